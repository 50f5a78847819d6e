import { main, type CliIo } from '../../src/cli/main.ts';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the CLI in-process with captured streams; not a TTY and no NO_COLOR unless asked. */
export async function runCli(argv: readonly string[], io: Partial<Pick<CliIo, 'stdin' | 'isTTY' | 'env'>> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => { stdout += s; return true; } },
    stderr: { write: (s: string) => { stderr += s; return true; } },
    stdin: io.stdin ?? '',
    isTTY: io.isTTY ?? false,
    env: io.env ?? {},
  });
  return { code, stdout, stderr };
}

export const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;
export const HOSTS = new URL('../fixtures/hosts/', import.meta.url).pathname;

export const ANSI = /\x1b\[[0-9;]*m/;
