// The `lspci -vvnn` importer: real dumps in, host specs out.
export { LspciError, type LspciErrorKind } from './errors.ts';
export { parseLspci, type LspciImport } from './parse.ts';
