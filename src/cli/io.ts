import picocolors from 'picocolors';

/** Where the CLI writes: anything with a `write(string)`, such as process.stdout or a test buffer. */
export interface TextSink {
  write(chunk: string): unknown;
}

/** What `-` reads: the text itself (tests), or a byte/string stream (process.stdin). */
export type TextSource = string | AsyncIterable<string | Uint8Array>;

/** The streams and environment one CLI run uses; injected so tests capture everything. */
export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly stdin: TextSource;
  /** Whether stdout is a terminal: colours default on only then. */
  readonly isTTY: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A reader that stops reading (`ioasis groups | head`) is not an error: stop quietly, no stack trace. */
function onStdoutError(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
  process.stderr.write(`ioasis: cannot write output: ${err.message}\n`);
  process.exitCode = 74;
}

function tolerateClosedPipe(stream: NodeJS.WriteStream): void {
  // Other listeners (tsx's) may be one-shot: ours stays, and is added once.
  if (!stream.listeners('error').includes(onStdoutError)) stream.on('error', onStdoutError);
}

/** The real process streams, for bin/ioasis.mjs. */
export function processIo(): CliIo {
  tolerateClosedPipe(process.stdout);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    isTTY: process.stdout.isTTY === true,
    env: process.env,
  };
}

/** Fill in whatever a caller left out from the real process. */
export function resolveIo(partial: Partial<CliIo> = {}): CliIo {
  const base = processIo();
  return {
    stdout: partial.stdout ?? base.stdout,
    stderr: partial.stderr ?? base.stderr,
    stdin: partial.stdin ?? base.stdin,
    isTTY: partial.isTTY ?? (partial.stdout === undefined ? base.isTTY : false),
    env: partial.env ?? base.env,
  };
}

/** Read all of a text source. */
export async function readAll(source: TextSource): Promise<string> {
  if (typeof source === 'string') return source;
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of source) text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

export type Colors = ReturnType<typeof picocolors.createColors>;

/**
 * Colours only on a terminal with NO_COLOR unset (set to anything, even empty, turns them off), unless --color/--no-color says otherwise
 * (`flag` is undefined when neither was given).
 */
export function colorsFor(io: CliIo, flag: boolean | undefined): Colors {
  // A boolean always: createColors(undefined) falls back to picocolors' own guess, which says yes under CI.
  const enabled = flag ?? (io.isTTY === true && io.env.NO_COLOR === undefined);
  return picocolors.createColors(enabled);
}

/** Line-oriented output for one run: stdout for results, stderr for notes and errors. */
export class Out {
  constructor(readonly io: CliIo, readonly c: Colors) {}

  line(text = ''): void { this.io.stdout.write(`${text}\n`); }
  lines(texts: readonly string[]): void { for (const t of texts) this.line(t); }
  note(text: string): void { this.io.stderr.write(`${this.c.yellow('note:')} ${text}\n`); }
  error(text: string): void { this.io.stderr.write(`ioasis: ${text}\n`); }
}
