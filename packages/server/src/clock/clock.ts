/**
 * Time, injected (design.md "Real-time rules"). Nothing in the engine calls `Date.now`,
 * `setTimeout` or `setInterval` directly: it gets a {@link Clock} for wall time and timers and a
 * {@link MediaClock} for the 20 ms packet tick, so tests move a fake clock ({@link FakeClock}).
 */

/** An opaque timer handle. */
export interface TimerHandle {
  readonly __timer: unique symbol;
}

/** Wall time and one-shot timers. */
export interface Clock {
  /** Unix epoch milliseconds (may be fractional). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; unknown or fired handles are ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** Packet period of every stream and call: 20 ms (ptime 20). */
export const PTIME_MS = 20;

/**
 * A tick handler: `tickMs` is the epoch ms at which this tick was due; `skipped` is how many ticks
 * the clock gave up just before this one after a stall (0 normally; the playout counts them as
 * lateness to recover).
 */
export type TickHandler = (tickMs: number, skipped: number) => void;

/**
 * The one media clock: a single drift-free 20 ms tick that drives all playout of all calls.
 */
export interface MediaClock {
  /** Subscribes to ticks; returns the unsubscribe function. */
  onTick(handler: TickHandler): () => void;
  /**
   * Preemption point (optional; the real clock has it): runs the tick at once if it is due and
   * already a few ms late (`RealMediaClock` `preemptAfterMs`, default 4), rather than when the event
   * loop next reaches its timers. I/O handlers that arrive in large batches (RTP packets, app
   * messages) call it per item, so a tick never waits for a whole long batch. Must not be called
   * from inside a tick handler (it is then a no-op).
   */
  runIfDue?(): void;
}

/** The process's real clock: `Date.now` and Node timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimeout: (h) => {
    if (h) clearTimeout(h as unknown as NodeJS.Timeout);
  },
};
