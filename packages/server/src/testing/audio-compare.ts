/**
 * Audio comparison for tests: normalised cross-correlation at the best lag.
 */

/** Normalised correlation of `a` and `b` over their common length (1 = identical shape). */
export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/**
 * Finds the lag (samples by which `signal` is delayed relative to `reference`) in `[0, maxLag]`
 * that maximises correlation over a 1 s window of the reference around its first loud sample, and
 * returns it with the correlation over the reference's whole length at that lag.
 */
export function bestLagCorrelation(
  reference: Int16Array,
  signal: Int16Array,
  maxLag: number,
  windowSamples = 8000,
): { lag: number; correlation: number } {
  let loud = 0;
  while (loud < reference.length && Math.abs(reference[loud]!) < 1000) loud++;
  const start = Math.max(0, Math.min(loud, reference.length - windowSamples));
  const window = reference.subarray(start, start + windowSamples);
  let bestLag = 0;
  let best = -2;
  for (let lag = 0; lag <= maxLag && start + lag < signal.length; lag++) {
    const c = correlation(window, signal.subarray(start + lag, start + lag + window.length));
    if (c > best) {
      best = c;
      bestLag = lag;
    }
  }
  return {
    lag: bestLag,
    correlation: correlation(reference, signal.subarray(bestLag, bestLag + reference.length)),
  };
}
