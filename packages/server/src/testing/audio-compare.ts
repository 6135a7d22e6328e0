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

/**
 * Echo check robust to delay changes: the reference is cut into `segmentSamples` pieces; for each
 * piece with speech in it (peak ≥ 1000) the best lag in `[0, maxLag]` is searched on its loudest
 * quarter, and the piece's correlation at that lag is taken.
 *
 * Returns the lags and correlations per piece, `worst` over all pieces, `lagChanges` (how often the
 * lag differs between consecutive pieces) and `worstExcusingChanges`: the worst correlation once, for
 * each lag change, the one piece on either side of it that correlates less is left out — the piece
 * a delay change falls inside cannot match one lag. An echo whose delay grows mid-call (the playout
 * queue absorbed a stall on a loaded machine) passes a check on that figure when every other piece
 * is intact.
 */
export function segmentedEchoCorrelation(
  reference: Int16Array,
  signal: Int16Array,
  maxLag: number,
  segmentSamples = 8000,
): {
  worst: number;
  worstExcusingChanges: number;
  lagChanges: number;
  lags: number[];
  correlations: number[];
} {
  let worst = 1;
  const lags: number[] = [];
  const correlations: number[] = [];
  for (let start = 0; start + segmentSamples <= reference.length; start += segmentSamples) {
    const piece = reference.subarray(start, start + segmentSamples);
    let peak = 0;
    for (const v of piece) peak = Math.max(peak, Math.abs(v));
    if (peak < 1000) continue;
    // Probe with the loudest quarter of the piece (a quiet quarter cannot pin the lag).
    const q = segmentSamples >> 2;
    let probeAt = 0;
    let probeEnergy = -1;
    for (let k = 0; k + q <= segmentSamples; k += q) {
      let e = 0;
      for (let i = k; i < k + q; i++) e += piece[i]! * piece[i]!;
      if (e > probeEnergy) {
        probeEnergy = e;
        probeAt = k;
      }
    }
    const probe = piece.subarray(probeAt, probeAt + q);
    let bestLag = 0;
    let best = -2;
    for (let lag = 0; lag <= maxLag && start + probeAt + lag + q <= signal.length; lag++) {
      const c = correlation(probe, signal.subarray(start + probeAt + lag, start + probeAt + lag + q));
      if (c > best) {
        best = c;
        bestLag = lag;
      }
    }
    const c = correlation(piece, signal.subarray(start + bestLag, start + bestLag + piece.length));
    lags.push(bestLag);
    correlations.push(c);
    worst = Math.min(worst, c);
  }
  const excused = new Set<number>();
  let lagChanges = 0;
  for (let i = 0; i + 1 < lags.length; i++) {
    if (lags[i] === lags[i + 1]) continue;
    lagChanges++;
    excused.add(correlations[i]! < correlations[i + 1]! ? i : i + 1);
  }
  let worstExcusingChanges = 1;
  correlations.forEach((c, i) => {
    if (!excused.has(i)) worstExcusingChanges = Math.min(worstExcusingChanges, c);
  });
  return { worst, worstExcusingChanges, lagChanges, lags, correlations };
}
