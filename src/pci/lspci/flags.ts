import { ACS_BIT_NAMES } from '../spec.ts';

/** lspci's ACSCap/ACSCtl token names (ls-ecaps.c cap_acs) and the register bits they show. */
const ACS_TOKENS: Readonly<Record<string, number>> = {
  SrcValid: ACS_BIT_NAMES.SV,
  TransBlk: ACS_BIT_NAMES.TB,
  ReqRedir: ACS_BIT_NAMES.RR,
  CmpltRedir: ACS_BIT_NAMES.CR,
  UpstreamFwd: ACS_BIT_NAMES.UF,
  EgressCtrl: ACS_BIT_NAMES.EC,
  DirectTrans: ACS_BIT_NAMES.DT,
};

export interface AcsTokens {
  readonly bits: number;
  /** False when the line ends in a half-printed token (a dump cut mid-line). */
  readonly complete: boolean;
}

/** Decode "SrcValid+ TransBlk- ReqRedir+ ..." into ACS register bits; unknown names are ignored. */
export function parseAcsTokens(text: string): AcsTokens {
  let bits = 0;
  let complete = true;
  for (const token of text.split(/\s+/)) {
    if (token === '') continue;
    const sign = token.charAt(token.length - 1);
    if (sign !== '+' && sign !== '-') {
      complete = false;
      continue;
    }
    const bit = ACS_TOKENS[token.slice(0, -1)];
    if (bit !== undefined && sign === '+') bits |= bit;
  }
  return { bits, complete };
}

/** Whether `Name+` appears among the whitespace- or comma-separated tokens of an lspci line. */
export function flagOn(text: string, name: string): boolean {
  const at = text.indexOf(`${name}+`);
  if (at < 0) return false;
  const before = at === 0 ? ' ' : text.charAt(at - 1);
  return before === ' ' || before === '\t' || before === ',' || before === ':';
}
