import { Kernel } from '../../kernel/kernel.ts';
import { effectiveCmdline } from '../analyse.ts';
import { EXIT_OK, InputError } from '../errors.ts';
import { loadInput } from '../input.ts';
import type { CliIo } from '../io.ts';
import { jsonText } from '../render/json.ts';

export interface SysfsOptions {
  readonly host?: string;
  readonly cmdline?: string;
  readonly depth?: number;
  readonly json: boolean;
}

/**
 * `ioasis sysfs [PATH] [FILE]`: boot the host and show /sys as Linux would have it: a directory as a tree
 * (links as `name -> target`), an attribute as its contents.
 */
export async function sysfsCommand(path: string, file: string | undefined, opts: SysfsOptions, io: CliIo): Promise<number> {
  const input = await loadInput(file, opts.host, io);
  const kernel = Kernel.boot(input.spec, { cmdline: effectiveCmdline(input.spec, opts.cmdline).cmdline });
  const sys = kernel.sysfs;
  const where = sys.realpath(path);
  if (!where.ok) throw new InputError(`${where.reason} (${where.errno})`, 'sysfs path');
  const dir = sys.list(where.value);
  if (!dir.ok) {
    const value = sys.read(where.value);
    if (!value.ok) throw new InputError(`${value.reason} (${value.errno})`, where.value);
    io.stdout.write(opts.json ? jsonText({ path: where.value, value: value.value }) : value.value);
    return EXIT_OK;
  }
  const lines = sys.render(where.value, opts.depth ?? Infinity);
  if (!lines.ok) throw new InputError(`${lines.reason} (${lines.errno})`, where.value);
  io.stdout.write(opts.json ? jsonText({ path: where.value, tree: lines.value }) : `${lines.value.join('\n')}\n`);
  return EXIT_OK;
}
