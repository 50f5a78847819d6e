/** One benchmark: `measure` runs one sample and returns its figure in `unit`; the harness takes the median. */
export interface BenchDef {
  readonly name: string;
  readonly unit: string;
  /** What the figure means and the target, for BENCHMARKS.md and --list. */
  readonly description: string;
  /** Samples to take (default 7); the median is reported. */
  readonly samples?: number;
  /** Untimed warm-up samples first (default 1): code that runs a few long calls needs more to be optimised. */
  readonly warmup?: number;
  /** Prepare once, outside the timed samples; returns the sampler. */
  readonly setup: () => () => number;
}

export interface BenchResult { bench: string; value: number; unit: string }

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Milliseconds spent in `fn`, by the monotonic clock. */
export function timeMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function runBench(def: BenchDef): BenchResult {
  const sample = def.setup();
  for (let i = 0; i < (def.warmup ?? 1); i++) sample(); // warm-up: JIT and caches, not counted
  const values: number[] = [];
  for (let i = 0; i < (def.samples ?? 7); i++) values.push(sample());
  const value = median(values);
  // Whole numbers (bytes, counts) are exact; measured rates keep 4 significant digits.
  return { bench: def.name, value: Number.isInteger(value) ? value : Number(value.toPrecision(4)), unit: def.unit };
}
