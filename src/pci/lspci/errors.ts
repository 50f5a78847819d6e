/** Why a dump could not be imported. */
export type LspciErrorKind = 'empty' | 'garbage' | 'truncated' | 'non-root' | 'invalid';

/**
 * The one error the lspci importer throws: what is wrong with the dump, in words a person can act on,
 * and the 1-based line it concerns (undefined when no single line is to blame, e.g. an empty dump).
 */
export class LspciError extends Error {
  override readonly name = 'LspciError';
  readonly kind: LspciErrorKind;
  readonly line: number | undefined;

  constructor(kind: LspciErrorKind, message: string, line?: number) {
    super(message);
    this.kind = kind;
    this.line = line;
  }
}

/** "line N: message": every error that blames one line says which. */
export function lineError(kind: LspciErrorKind, line: number, message: string): LspciError {
  return new LspciError(kind, `line ${line}: ${message}`, line);
}
