/**
 * Time-scale compression of speech for playout catch-up: the "accelerate" operation of adaptive
 * jitter buffers (WebRTC NetEq's `Accelerate`, after the WSOLA family of methods). One 20 ms output
 * frame is made from slightly more input by removing whole pitch periods with an overlap-add, so the
 * pitch and the words are kept and no click is introduced. Pure: typed arrays in, typed arrays out.
 */

/** Parameters of {@link accelerateFrame}, in samples at the audio's rate. */
export interface AccelerateOptions {
  /** Shortest period searched (2.5 ms: a 400 Hz voice). */
  minPeriod: number;
  /** Longest period searched (15 ms: a 67 Hz voice). */
  maxPeriod: number;
  /** Most removed from a silent frame (default `maxPeriod`; at most one frame). */
  maxSilenceRemove?: number;
  /** Never remove more than this (the playout's remaining lateness). */
  maxRemove: number;
  /**
   * Normalised correlation between two consecutive periods needed to remove one (voiced, steady
   * speech); below it (onsets, unvoiced sounds) the frame is left alone. Default 0.6.
   */
  minCorrelation?: number;
  /** RMS under which the input counts as silence and any length may go. Default 64 (≈ −54 dBov). */
  silenceRms?: number;
  /**
   * Remove the largest whole multiple of the pitch period up to this many samples (still ≤
   * `maxRemove`, the frame and the input, and still correlating ≥ `minCorrelation`) instead of one
   * period: NetEq's "fast accelerate", for a deep backlog. The period is still searched only up to
   * `maxPeriod` (the search is the costly part). Default: one period.
   */
  multiplesUpTo?: number;
  /**
   * Asked once before a pitch search — the costly part (~15 µs a frame); a silent frame needs none
   * and does not ask. `false` leaves the frame as is (a plain copy, 0 returned). The playout's
   * per-tick CPU budget ({@link CatchUpBudget} in playout.ts). Default: always search.
   */
  maySearch?: () => boolean;
  /**
   * When no pitch period is removed (the search was refused, or nothing correlates: an onset, an
   * unvoiced sound), remove this many samples anyway (still ≤ `maxRemove`, the input and the
   * frame), crossfading over the whole frame — no search, a few hundred multiply-adds. For a deep
   * backlog under overload: a blend of two frames is heard as a slight slur; the alternative is a
   * delay that keeps growing. Default: none.
   */
  fallbackRemove?: number;
  /**
   * The stream's pitch, carried from frame to frame (in and out; one object per stream): in, the
   * period last found (0: none); out, the period this frame's search found, if it found one
   * (otherwise left as it was: silence, a refused search or an unvoiced sound between two voiced
   * ones do not lose the speaker's pitch). A voice's pitch drifts slowly, so the lags within
   * ±{@link HINT_SPAN} of the last period are tried first, at full resolution (5 correlations
   * instead of ~55): if the best correlates ≥ {@link HINT_CORRELATION}, it is taken without the
   * full search; otherwise the full search runs. Default: always the full search.
   */
  periodHint?: { period: number };
}

/** Lags either side of {@link AccelerateOptions.periodHint} tried before a full pitch search. */
export const HINT_SPAN = 2;

/**
 * Normalised correlation a lag near the hinted period needs to be taken without the full search —
 * stricter than the 0.6 a full search's best needs, since the full search could have found better.
 */
export const HINT_CORRELATION = 0.7;

/**
 * Writes `out.length` samples into `out` from the start of `input`, removing `removed` samples
 * (returned) by crossfading `input[i]` into `input[i + removed]` over the first `removed` outputs:
 *
 *   out[i] = input[i]·(1 − w) + input[i + P]·w,  w = (i + ½)/P   for i < P
 *   out[i] = input[i + P]                                        for P ≤ i < n
 *
 * so `out[0]` continues the previous frame and `out[n − 1]` is followed by `input[n + P]`. P is the
 * lag in `[minPeriod, min(maxPeriod, maxRemove, input.length − n, n)]` that best correlates the frame
 * with itself (one pitch period; the best lag near `periodHint` when that correlates well enough),
 * or its largest correlating multiple up to `multiplesUpTo`; in silence P is as large as allowed
 * (`maxSilenceRemove`).
 *
 * @param input at least `out.length` samples; the `input.length − out.length` extra ones are what
 *   may be removed
 * @param out one frame (160 samples at 8 kHz)
 * @returns samples of `input` consumed beyond `out.length` (0: `out` is a plain copy of the input)
 */
export function accelerateFrame(input: Int16Array, out: Int16Array, options: AccelerateOptions): number {
  const n = out.length;
  if (input.length < n) throw new RangeError(`accelerateFrame: ${input.length} input samples < frame ${n}`);
  const avail = input.length - n;
  const maxP = Math.min(options.maxPeriod, options.maxRemove, avail, n);
  const maxSilence = Math.min(options.maxSilenceRemove ?? options.maxPeriod, options.maxRemove, avail, n);
  const silenceRms = options.silenceRms ?? 64;
  let energy = 0;
  for (let i = 0; i < n + maxSilence; i++) energy += input[i]! * input[i]!;
  let period: number;
  if (energy / (n + maxSilence) < silenceRms * silenceRms) {
    period = maxSilence; // nothing to keep in shape: as much as allowed
  } else if (maxP >= options.minPeriod && (!options.maySearch || options.maySearch())) {
    const minCorrelation = options.minCorrelation ?? 0.6;
    const hint = options.periodHint?.period ?? 0;
    let found =
      hint >= options.minPeriod && hint <= maxP
        ? bestLag(
            input,
            maxP,
            Math.max(options.minPeriod, hint - HINT_SPAN),
            Math.min(maxP, hint + HINT_SPAN),
            1,
          )
        : null;
    if (!found || found.correlation < Math.max(HINT_CORRELATION, minCorrelation))
      found = bestPeriod(input, maxP, options.minPeriod, maxP);
    period = found.correlation >= minCorrelation ? found.period : 0;
    if (period > 0 && options.periodHint) options.periodHint.period = period; // before multiples
    const maxMultiple = Math.min(options.multiplesUpTo ?? 0, options.maxRemove, avail, n);
    if (period > 0 && maxMultiple >= 2 * period) {
      for (let k = Math.floor(maxMultiple / period); k > 1; k--) {
        // same window as the search; k·period ≤ avail keeps it inside the input
        if (correlationAt(input, maxP, k * period, 1) >= minCorrelation) {
          period *= k;
          break;
        }
      }
    }
  } else {
    period = 0;
  }
  if (period < options.minPeriod && options.fallbackRemove) {
    period = Math.min(options.fallbackRemove, options.maxRemove, avail, n);
  }
  if (period < options.minPeriod) {
    out.set(input.subarray(0, n));
    return 0;
  }
  for (let i = 0; i < period; i++) {
    const w = (i + 0.5) / period;
    out[i] = Math.round(input[i]! * (1 - w) + input[i + period]! * w);
  }
  out.set(input.subarray(2 * period, n + period), period);
  return period;
}

/** Normalised correlation of `x[0, len)` with `x[p, p + len)`, sampled every `step` samples. */
function correlationAt(x: Int16Array, len: number, p: number, step: number): number {
  let xy = 0;
  let xx = 0;
  let yy = 0;
  for (let i = 0; i < len; i += step) {
    const a = x[i]!;
    const b = x[i + p]!;
    xy += a * b;
    xx += a * a;
    yy += b * b;
  }
  return xx > 0 && yy > 0 ? xy / Math.sqrt(xx * yy) : 0;
}

/**
 * The lag in `[minP, maxP]` at which `x` best repeats itself over a `len`-sample window: a coarse
 * search on every second lag with every second sample, then every lag within ±2 of the winner at
 * full resolution (about a tenth of the cost of the full search, which matters with hundreds of
 * calls catching up on the same tick).
 */
function bestPeriod(
  x: Int16Array,
  len: number,
  minP: number,
  maxP: number,
): { period: number; correlation: number } {
  const coarse = bestLag(x, len, minP, maxP, 2).period;
  return bestLag(x, len, Math.max(minP, coarse - 2), Math.min(maxP, coarse + 2), 1);
}

/**
 * The lag in `[from, to]`, every `step`-th one, at which `x` best repeats itself over `len`
 * samples (read every `step`-th sample: 1 is full resolution).
 */
function bestLag(
  x: Int16Array,
  len: number,
  from: number,
  to: number,
  step: number,
): { period: number; correlation: number } {
  let period = from;
  let best = -2;
  for (let p = from; p <= to; p += step) {
    const c = correlationAt(x, len, p, step);
    if (c > best) {
      best = c;
      period = p;
    }
  }
  return { period, correlation: best };
}
