/**
 * Fixed-bucket latency histogram for the hot path: recording is one array increment (no
 * allocation); quantiles are read at scrape time. Buckets: 0.05 ms wide up to 50 ms, 1 ms wide up to
 * 1 s, then one overflow bucket (values there report as the recorded maximum).
 */

const FINE_MS = 50;
const FINE_STEP = 0.05;
const COARSE_MS = 1000;
const FINE_BUCKETS = FINE_MS / FINE_STEP;
const BUCKETS = FINE_BUCKETS + (COARSE_MS - FINE_MS) + 1;

/** Upper bound, ms, of bucket `i` (not the overflow bucket). */
function upperMs(i: number): number {
  return i < FINE_BUCKETS ? (i + 1) * FINE_STEP : FINE_MS + (i - FINE_BUCKETS) + 1;
}

/** A latency histogram in milliseconds. */
export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  /** Number of samples. */
  count = 0;
  /** Sum of samples, ms. */
  sum = 0;
  /** Largest sample, ms. */
  max = 0;

  /** Records one latency in ms (negative values count as 0). */
  record(ms: number): void {
    const v = ms > 0 ? ms : 0;
    const i =
      v < FINE_MS
        ? Math.floor(v / FINE_STEP)
        : v < COARSE_MS
          ? FINE_BUCKETS + Math.floor(v - FINE_MS)
          : BUCKETS - 1;
    this.counts[i]!++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  /** Samples below `lo` or at/above `hi` ms (exact on bucket boundaries, see {@link countBelow}). */
  countOutside(lo: number, hi: number): number {
    return this.countBelow(lo) + this.count - this.countBelow(hi);
  }

  /**
   * Samples below `ms` (exact when `ms` is a bucket boundary: a multiple of 0.05 ms below 50 ms,
   * a whole ms up to 1 s).
   */
  countBelow(ms: number): number {
    let n = 0;
    for (let i = 0; i < BUCKETS - 1 && upperMs(i) <= ms + 1e-9; i++) n += this.counts[i]!;
    return n;
  }

  /** Upper bound (ms) of the bucket holding quantile `q` (0–1); 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const target = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) {
        return Math.min(i < BUCKETS - 1 ? upperMs(i) : this.max, this.max);
      }
    }
    return this.max;
  }

  /** Prometheus summary exposition (quantiles 0.5, 0.9, 0.99, 1; `_sum`, `_count`) in seconds. */
  exposition(name: string, help: string): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} summary`];
    for (const q of [0.5, 0.9, 0.99, 1])
      lines.push(`${name}{quantile="${q}"} ${(this.quantile(q) / 1000).toFixed(6)}`);
    lines.push(`${name}_sum ${(this.sum / 1000).toFixed(6)}`, `${name}_count ${this.count}`);
    return lines.join('\n') + '\n';
  }

  /**
   * The same samples as a Prometheus histogram (`_bucket{le}` cumulative, `_sum`, `_count`) in
   * seconds, so that rates and shares can be taken over any window (`rate(..._bucket[1m])`) and
   * summed across instances — a summary's quantiles cover the process lifetime and cannot be.
   * A bucket counts the samples below its bound (see {@link countBelow}).
   * @param boundsMs ascending bucket bounds, ms (default {@link LATENCY_BUCKETS_MS})
   */
  histogramExposition(name: string, help: string, boundsMs: readonly number[] = LATENCY_BUCKETS_MS): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    // One pass over the buckets (the scrape runs on the media thread).
    let i = 0;
    let below = 0;
    for (const b of boundsMs) {
      for (; i < BUCKETS - 1 && upperMs(i) <= b + 1e-9; i++) below += this.counts[i]!;
      lines.push(`${name}_bucket{le="${b / 1000}"} ${below}`);
    }
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`);
    lines.push(`${name}_sum ${(this.sum / 1000).toFixed(6)}`, `${name}_count ${this.count}`);
    return lines.join('\n') + '\n';
  }
}

/**
 * Bucket bounds, ms, of the exported latency histograms: fine around one 20 ms ptime (the
 * budgets of issue 6 are 5 ms capture→WebSocket and 25 ms playAudio→RTP), coarse beyond.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.5, 1, 2.5, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 250, 500, 1000,
];

/** The engine's latency histograms (one set per process, owned by the runtime). */
export interface EngineLatency {
  /** Caller RTP packet received → its `media` frame written to the app's socket. */
  captureToWs: LatencyHistogram;
  /** `playAudio` received → first RTP packet carrying its audio sent to the caller. */
  playToRtp: LatencyHistogram;
  /** How late each media-clock tick ran (a late tick delays every call's RTP). */
  tickLateness: LatencyHistogram;
  /** How long one tick's handlers (mixing and sending for every call) took. */
  tickDuration: LatencyHistogram;
  /** Time between consecutive RTP packets of a call as they leave the server (ideal: 20 ms). */
  rtpSendInterval: LatencyHistogram;
  /** The high-resolution monotonic clock the stamps use, ms. */
  now(): number;
}

/** Fresh histograms on `performance.now()`. */
export function createEngineLatency(now: () => number = () => performance.now()): EngineLatency {
  return {
    captureToWs: new LatencyHistogram(),
    playToRtp: new LatencyHistogram(),
    tickLateness: new LatencyHistogram(),
    tickDuration: new LatencyHistogram(),
    rtpSendInterval: new LatencyHistogram(),
    now,
  };
}
