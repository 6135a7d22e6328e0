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

/** Result of {@link frameEchoAlignment}. */
export interface FrameEchoAlignment {
  /** Reference frames loud enough to be checked (RMS ≥ `minRms`). */
  checked: number;
  /** Checked frames whose best match at an allowed lag correlates below `minCorrelation`. */
  damaged: number;
  /** Worst per-frame correlation over the checked frames, and the frame index it belongs to. */
  worst: number;
  worstFrame: number;
  /** Lag (samples by which the echo trails the reference) after each change, in order. */
  lags: number[];
  /** Reference frame index at which each entry of `lags` took effect. */
  changedAt: number[];
}

/**
 * Frame-granular echo check: is `signal` the `reference` with nothing lost, reordered or damaged,
 * only delayed — by a delay that may grow mid-call (a stall of a loaded machine makes the playout
 * queue run dry and keep the extra depth) but never shrinks?
 *
 * Each `frameSamples` frame of the reference with RMS ≥ `minRms` is matched at the current lag; if
 * it correlates below `minCorrelation` there, the lags from the current one up to `maxLag` in
 * steps of `lagStep` (default one frame: a playout inserts whole ticks of silence) are searched,
 * and the best is taken **only if** it reaches `minCorrelation` (a lone damaged frame cannot drag
 * the lag somewhere spurious; it is counted in `damaged`). Whole steps matter for speech: a voiced
 * frame also matches, at ≈ 0.98, one or two pitch periods off. The first checked frame searches
 * every lag from 0. A lag change therefore needs an intact frame at the new lag, wherever in the
 * call it falls (a check by longer pieces cannot see a change inside its last piece).
 *
 * When the lag is not a whole number of frames (a resampler's delay), the inserted silence falls
 * inside one reference frame: the frame just before a change is then matched as its head at the old
 * lag and its tail at the new one (best split), and counts as intact if that reaches
 * `minCorrelation`.
 *
 * Cost: O(frames × frameSamples) plus O(maxLag × frameSamples / lagStep) per lag change or damaged
 * frame (O(maxLag × frameSamples) for the first).
 * Samples are 16-bit PCM at any rate; lags are in samples of that rate.
 */
export function frameEchoAlignment(
  reference: Int16Array,
  signal: Int16Array,
  opts: {
    maxLag: number;
    frameSamples?: number;
    minRms?: number;
    minCorrelation?: number;
    lagStep?: number;
  },
): FrameEchoAlignment {
  const n = opts.frameSamples ?? 160;
  const minRms = opts.minRms ?? 500;
  const minCorrelation = opts.minCorrelation ?? 0.99;
  const lagStep = opts.lagStep ?? n;
  const lags: number[] = [];
  const changedAt: number[] = [];
  const scores = new Map<number, number>(); // checked frame → correlation
  const at = (start: number, l: number): number =>
    start + l + n <= signal.length
      ? correlation(reference.subarray(start, start + n), signal.subarray(start + l, start + l + n))
      : 0;
  /** The frame at `start` as its first `k` samples at `before`, the rest at `after`, best k. */
  const split = (start: number, before: number, after: number): number => {
    if (start + after + n > signal.length) return 0;
    const joined = new Int16Array(n);
    let best = 0;
    for (let k = 1; k < n; k++) {
      joined.set(signal.subarray(start + before, start + before + k), 0);
      joined.set(signal.subarray(start + after + k, start + after + n), k);
      best = Math.max(best, correlation(reference.subarray(start, start + n), joined));
    }
    return best;
  };
  let lag = -1; // no lag yet
  let previous = -1; // the last checked frame
  for (let f = 0; (f + 1) * n <= reference.length; f++) {
    const start = f * n;
    let energy = 0;
    for (let i = start; i < start + n; i++) energy += reference[i]! * reference[i]!;
    if (Math.sqrt(energy / n) < minRms) continue;
    let c = lag >= 0 ? at(start, lag) : -2;
    if (c < minCorrelation) {
      // The first lag may be anything; later ones differ from it by whole `lagStep`s (the playout
      // inserts whole ticks), which keeps a quasi-periodic voiced frame from matching one or two
      // pitch periods off.
      let best = -2;
      let bestLag = -1;
      const from = Math.max(lag, 0);
      const step = lag >= 0 ? lagStep : 1;
      for (let l = from; l <= opts.maxLag; l += step) {
        const x = at(start, l);
        if (x > best) {
          best = x;
          bestLag = l;
        }
      }
      if (best >= minCorrelation) {
        // The last checked frame failed at the old lag: the change may lie inside it (its head at
        // the old lag, its tail at the new one) — even with unchecked quiet frames in between.
        if (lag >= 0 && previous >= 0 && scores.get(previous)! < minCorrelation) {
          const s = split(previous * n, lag, bestLag);
          if (s > scores.get(previous)!) scores.set(previous, s);
        }
        c = best;
        lag = bestLag;
        lags.push(lag);
        changedAt.push(f);
      } else {
        c = Math.max(c, best);
      }
    }
    scores.set(f, c);
    previous = f;
  }
  const out: FrameEchoAlignment = {
    checked: scores.size,
    damaged: 0,
    worst: 1,
    worstFrame: -1,
    lags,
    changedAt,
  };
  for (const [f, c] of scores) {
    if (c < minCorrelation) out.damaged++;
    if (c < out.worst) {
      out.worst = c;
      out.worstFrame = f;
    }
  }
  return out;
}
