/**
 * A reproducible disturbance for the load benchmark (`--freeze DUTY/MS`): each of the benchmark's
 * processes (server, app, callers) is frozen and thawed independently (`SIGSTOP`/`SIGCONT`), for
 * 5…MS ms at a time, about DUTY of the time — roughly what vCPU steal does to a guest's processes on
 * a busy host, but seeded, so runs under the same disturbance can be compared (issue 6: on this VM,
 * steal swung from 0 to 56 % within an hour, and runs under real steal could not be compared).
 *
 * Not for production: it signals processes by pid.
 */

/** How to disturb: see {@link parseFreeze}. */
export interface FreezeSpec {
  /** Share of the time each process is frozen, (0, 1). */
  duty: number;
  /** Longest freeze, ms (each is uniform in [5, maxMs]). */
  maxMs: number;
  /** Seed of the freezes (each target gets its own stream from it). */
  seed: number;
}

/** What a {@link Freezer} did, per target. */
export interface FreezeStats {
  /** Freezes started. */
  freezes: number;
  /** Time spent frozen, ms. */
  frozenMs: number;
  /** Longest single freeze, ms. */
  maxMs: number;
}

/**
 * Parses `DUTY/MS` (e.g. `0.2/80`: frozen 20 % of the time, for 5–80 ms at a time).
 * @throws Error naming the expected form when the text does not match or is out of range
 */
export function parseFreeze(text: string, seed = 1): FreezeSpec {
  const m = /^(0?\.\d+)\/(\d+)$/.exec(text);
  const duty = m ? Number(m[1]) : NaN;
  const maxMs = m ? Number(m[2]) : NaN;
  if (!(duty > 0 && duty < 1 && maxMs >= 5 && maxMs <= 5000))
    throw new Error(
      `--freeze must be DUTY/MS with 0 < DUTY < 1 and 5 ≤ MS ≤ 5000 (e.g. 0.2/80), got ${text}`,
    );
  return { duty, maxMs, seed };
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Freezes each target process independently until {@link Freezer.stop}: a freeze of f ms uniform
 * in [5, maxMs], then a thaw of f·(1 − duty)/duty × uniform [0.5, 1.5] ms, so each process is
 * frozen about `duty` of the time. Timers of this process; a target that has exited is skipped.
 */
export class Freezer {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly frozen = new Set<string>();
  private stopped = false;
  readonly stats: Record<string, FreezeStats> = {};

  /** @param targets name → pid of each process to disturb */
  constructor(
    private readonly spec: FreezeSpec,
    private readonly targets: Record<string, number>,
  ) {}

  /** Starts every target's freeze/thaw cycle (each with its own PRNG stream of `spec.seed`). */
  start(): void {
    Object.entries(this.targets).forEach(([name, pid], i) => {
      const random = prng(this.spec.seed * 1000 + i);
      const stats: FreezeStats = (this.stats[name] = { freezes: 0, frozenMs: 0, maxMs: 0 });
      const cycle = (): void => {
        if (this.stopped) return;
        const f = 5 + random() * (this.spec.maxMs - 5);
        if (!signal(pid, 'SIGSTOP')) return;
        this.frozen.add(name);
        const at = performance.now();
        this.timers.set(
          name,
          setTimeout(() => {
            signal(pid, 'SIGCONT');
            this.frozen.delete(name);
            const took = performance.now() - at;
            stats.freezes++;
            stats.frozenMs += took;
            stats.maxMs = Math.max(stats.maxMs, took);
            if (this.stopped) return;
            const thaw = ((f * (1 - this.spec.duty)) / this.spec.duty) * (0.5 + random());
            this.timers.set(name, setTimeout(cycle, thaw));
          }, f),
        );
      };
      // Start each target at its own phase (not all frozen together).
      this.timers.set(name, setTimeout(cycle, random() * this.spec.maxMs));
    });
  }

  /** Stops the cycles and thaws whatever is frozen. Idempotent. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const name of this.frozen) signal(this.targets[name]!, 'SIGCONT');
    this.frozen.clear();
  }
}

/** Sends `sig` to `pid`; false when the process is gone. */
function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
