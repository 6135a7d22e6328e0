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
  /**
   * Grace window of a tick (optional): called from inside a tick handler, promises to call `fn` by
   * the tick's due time + the clock's grace (`RealMediaClock` `graceMs`, default 4 ms — inside the
   * ±5 ms a packet interval may vary), so a call whose playback frame is a few ms late can send it
   * in this tick's slot instead of a silence frame (protocol.md §3.6; the frame is then sent when
   * the audio arrives, or by `fn` at the deadline). Returns `false`, scheduling nothing, outside a
   * tick, when the grace is 0, or when the deadline has already passed: the caller sends at once.
   * `fn` returns `true` when it still had work to do at the deadline (statistics), else nothing.
   */
  deferTick?(fn: () => boolean | void): boolean;
}

/** The process's real clock: `Date.now` and Node timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimeout: (h) => {
    if (h) clearTimeout(h as unknown as NodeJS.Timeout);
  },
};

/**
 * The handlers of tick number `tick`, in the order they run: subscription order rotated by one
 * place per tick, so no call is always first or always last — the first ones get the tick's
 * shared budget (playout catch-up, `CatchUpBudget` in media/playout.ts) and the earliest send.
 */
export function tickOrder<T>(handlers: Set<T>, tick: number): T[] {
  const all = [...handlers];
  const k = all.length > 1 ? tick % all.length : 0;
  return k === 0 ? all : all.slice(k).concat(all.slice(0, k));
}
