// The two page-table formats of docs/hw-iommu.md, as bit masks on the 32-bit halves of an entry.

/** 512 entries of 8 bytes per 4 KiB table. */
export const ENTRIES_PER_TABLE = 512;
export const LEVEL_BITS = 9;
export const PAGE_SHIFT = 12;

// Second stage (VT-d second-level style), low half.
export const SS_R = 1 << 0;
export const SS_W = 1 << 1;
export const SS_X = 1 << 2;
export const SS_RSVD_LO = 0x78; // bits 6:3
export const SS_PS = 1 << 7;
export const SS_A = 1 << 8;
export const SS_D = 1 << 9;
/** High half: bits 63:52 are reserved. */
export const SS_RSVD_HI = 0xfff00000;

// First stage (x86-64 style), low half.
export const FS_P = 1 << 0;
export const FS_RW = 1 << 1;
export const FS_US = 1 << 2;
export const FS_A = 1 << 5;
export const FS_D = 1 << 6;
export const FS_PS = 1 << 7;
/** High half: bit 63, no-execute. */
export const FS_XD_HI = 0x80000000;

/** Permission bits used in results: read, write, execute. */
export const PERM_R = 1;
export const PERM_W = 2;
export const PERM_X = 4;

// Lookup tables rather than `2 **` and divisions: the walk calls these at every level, and V8 compiles
// `2 ** x` to a call and a division by a non-literal to a real divide.
const LEVEL_SIZE = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48];
const LEVEL_SCALE = [0, 2 ** -12, 2 ** -21, 2 ** -30, 2 ** -39, 2 ** -48];
const ADDRESS_LIMIT = [0, 0, 0, 0, 2 ** 48, 2 ** 57];

/** Bytes mapped by one entry at `level` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB, 4: 512 GiB, 5: 256 TiB). */
export function levelSize(level: number): number {
  return LEVEL_SIZE[level] ?? 2 ** (PAGE_SHIFT + LEVEL_BITS * (level - 1));
}

/** Index of `iova` in a level-`level` table. Exact for every address below 2^53 and every page address. */
export function levelIndex(iova: number, level: number): number {
  const scale = LEVEL_SCALE[level];
  if (scale === undefined || !(iova >= 0 && iova < 18446744073709551616)) return Math.floor(iova / levelSize(level)) % ENTRIES_PER_TABLE;
  // Scaling by a power of two is exact; ToUint32 keeps the low 32 bits, of which the index is the low 9.
  return (Math.floor(iova * scale) >>> 0) & (ENTRIES_PER_TABLE - 1);
}

/** 2^addressBits(levels): IOVAs at or above it are beyond a table of that depth. */
export function addressLimit(levels: number): number {
  return ADDRESS_LIMIT[levels] ?? 2 ** addressBits(levels);
}

/** IOVA bits a table of `levels` levels translates: 48 or 57. */
export function addressBits(levels: number): number {
  return PAGE_SHIFT + LEVEL_BITS * levels;
}

/** The address field (bits 51:12) of an entry. */
export function entryAddress(lo: number, hi: number): number {
  return (hi & 0xfffff) * 0x1_0000_0000 + ((lo & 0xfffff000) >>> 0);
}

/** Split a 4 KiB-aligned address into the (lo, hi) address-field halves of an entry. */
export function addressHalves(pa: number): [number, number] {
  const hi = Math.floor(pa / 0x1_0000_0000) & 0xfffff;
  const lo = (pa % 0x1_0000_0000) >>> 0;
  return [(lo & 0xfffff000) >>> 0, hi];
}

/** High-half mask of address bits at or above `physAddressWidth` (reserved in both formats). */
export function reservedAddressHi(physAddressWidth: number): number {
  if (physAddressWidth >= 52) return 0;
  const keep = physAddressWidth <= 32 ? 0 : (1 << (physAddressWidth - 32)) - 1;
  return (0xfffff & ~keep) >>> 0;
}
