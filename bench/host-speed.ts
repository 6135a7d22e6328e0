/**
 * How fast the host ran the benchmark, second by second: a fixed piece of arithmetic timed in CPU
 * time (not wall time) on the benchmark's own thread.
 *
 * Why: on a shared VM the same work does not always cost the same CPU time. Measured on this 2-vCPU
 * machine, idle, with 0 % steal in `/proc/stat`: the same 6 ms loop took 5.7–12.1 ms of CPU time
 * from one half second to the next (a hyperthread sibling or the host's clock, invisible to the
 * guest). Every figure of the run moves with it — CPU per stream-second and every latency tail — so
 * steal alone does not say whether a run measured the code or the host.
 *
 * The probe: every {@link PROBE_EVERY_MS} ms, {@link PROBE_ROUNDS} rounds over a small
 * `Float64Array` (~0.35 ms at full speed, ~0.4 % of a core), timed in the process's CPU time
 * (`process.cpuUsage()`, i.e. `getrusage`, µs): time the thread waited for a core (the load of the
 * benchmark itself, or steal) is not counted, only how long the core took to do the work. (The
 * benchmark process's other threads are idle while it runs; `/proc/thread-self/schedstat` would be
 * per thread, but the kernel updates it only at scheduler ticks.)
 */

/** Interval between two probes, ms. */
export const PROBE_EVERY_MS = 100;
/** Rounds of the probe's loop (fixed: the figures are comparable between runs and commits). */
export const PROBE_ROUNDS = 128;
const WORK = new Float64Array(2048);

/** The process's CPU time so far (user + system), µs. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** The fixed work. Returns a value so the loop cannot be optimised away. */
function work(): number {
  let x = 0;
  for (let r = 0; r < PROBE_ROUNDS; r++) {
    for (let i = 0; i < WORK.length; i++) {
      WORK[i] = WORK[i]! * 0.5 + i * r;
      x += WORK[i]!;
    }
  }
  return x;
}

/** p-quantile (0…1) of `xs` (sorted copy); NaN for none. */
function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

/** Summary of probes: CPU time of one probe, µs. */
export interface HostSpeedSummary {
  probes: number;
  p10Us: number;
  p50Us: number;
  p90Us: number;
  /**
   * How much slower the host ran than at its fastest in this run, %: (p50 / p10 − 1) · 100.
   * 0 on an even host; this machine has shown 0–100 %.
   */
  slowdownPct: number;
}

/**
 * Probes the host's speed on a timer. `second()` returns the median probe of the samples taken
 * since the last call (for a per-second timeline); `summary()` the whole run's.
 */
export class HostSpeedProbe {
  private readonly all: number[] = [];
  private recent: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sink = 0;

  /** Starts probing (idempotent). */
  start(): void {
    if (this.timer) return;
    work(); // warm up: the first runs are interpreted
    work();
    this.timer = setInterval(() => this.probe(), PROBE_EVERY_MS);
    this.timer.unref();
  }

  /** Stops probing (idempotent). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private probe(): void {
    const t0 = cpuUs();
    this.sink += work();
    const us = cpuUs() - t0;
    if (!Number.isFinite(us) || us <= 0) return;
    this.all.push(us);
    this.recent.push(us);
  }

  /** Median CPU time of the probes since the previous call, µs (NaN if none ran). */
  second(): number {
    const m = quantile(this.recent, 0.5);
    this.recent = [];
    return Number.isFinite(m) ? +m.toFixed(0) : NaN;
  }

  /** The whole run's probes. */
  summary(): HostSpeedSummary {
    const p10 = quantile(this.all, 0.1);
    const p50 = quantile(this.all, 0.5);
    return {
      probes: this.all.length,
      p10Us: +p10.toFixed(0),
      p50Us: +p50.toFixed(0),
      p90Us: +quantile(this.all, 0.9).toFixed(0),
      slowdownPct: +((p50 / p10 - 1) * 100).toFixed(0),
    };
  }
}
