import { performance } from 'node:perf_hooks';
import { PTIME_MS, tickOrder, type MediaClock, type TickHandler } from './clock.js';

/** Statistics of a {@link RealMediaClock}. */
export interface MediaClockStats {
  ticks: number;
  /** Ticks given up after a stall longer than the catch-up budget. */
  skipped: number;
  /** Largest lateness of a tick seen, ms. */
  maxLateMs: number;
  /** Ticks run from an I/O handler by {@link RealMediaClock.runIfDue} instead of the timer. */
  preempted: number;
  /** Sends deferred into a tick's grace window ({@link RealMediaClock.deferTick}). */
  deferred: number;
  /** Of those, the ones still waiting at the deadline (their frame went out without the audio). */
  deferredExpired: number;
}

/**
 * The real media clock. Tick n is due at `t0 + n·20 ms` on the monotonic clock
 * (`performance.now`), so timer lateness never accumulates into drift. After a stall it catches up
 * at most `maxCatchUp` ticks at once (a short burst), then skips the rest rather than bursting a
 * backlog of packets at the caller. Runs only while it has subscribers; handler exceptions are
 * reported to `onError` and never stop the clock.
 *
 * A Node timer only fires between I/O batches: when hundreds of RTP packets and app messages arrive
 * together (callers and bots on a shared 20 ms pacer), the timer waits for the whole batch —
 * measured up to ~10 ms at 200 calls. {@link runIfDue}, called by the I/O handlers per item, fires
 * the tick from inside the batch once it is `preemptAfterMs` late (4 ms: within the ±5 ms a packet
 * interval may vary). Not at once: a tick taken the instant it is due splits the batch of app
 * messages it should play, and the streams whose message came second run dry (measured: 200 echo
 * calls, playAudio→RTP p50 22–26 → 34–291 ms).
 *
 * {@link deferTick} gives a tick's handlers a grace window: one timer per tick at due + `graceMs`
 * runs what is still deferred (also run by {@link runIfDue} and before the next tick, whichever
 * comes first).
 */
export class RealMediaClock implements MediaClock {
  private readonly handlers = new Set<TickHandler>();
  private timer: NodeJS.Timeout | number | undefined;
  private t0 = 0;
  private epoch0 = 0;
  private n = 0;
  private firing = false;
  /** Due time (monotonic ms) of the tick being emitted. */
  private dueNow = 0;
  private deferred: Array<() => boolean | void> = [];
  private deferDeadline = 0;
  private deferTimer: NodeJS.Timeout | number | undefined;
  private readonly preemptAfterMs: number;
  private readonly graceMs: number;
  readonly stats: MediaClockStats = {
    ticks: 0,
    skipped: 0,
    maxLateMs: 0,
    preempted: 0,
    deferred: 0,
    deferredExpired: 0,
  };

  private readonly monotonic: () => number;
  private readonly wall: () => number;
  private readonly schedule0: (fn: () => void, ms: number) => NodeJS.Timeout | number;
  private readonly cancel: (t: NodeJS.Timeout | number) => void;

  /**
   * @param options.maxCatchUp ticks emitted at once after a stall (default 3)
   * @param options.onError receives exceptions thrown by tick handlers
   * @param options.monotonicNow / wallNow / setTimer / clearTimer: time sources, injectable for tests
   *   (defaults `performance.now`, `Date.now`, `setTimeout`, `clearTimeout`)
   */
  constructor(
    private readonly options: {
      maxCatchUp?: number;
      /**
       * How late (ms) a tick may run before {@link runIfDue} takes it from an I/O batch (default 4:
       * inside the ±5 ms a packet interval may vary, while short batches — often the very app
       * messages this tick should play — still finish first).
       */
      preemptAfterMs?: number;
      /** Grace window of {@link deferTick}, ms after a tick's due time (default 4; 0 disables). */
      graceMs?: number;
      onError?: (e: unknown) => void;
      /** Called for every tick with how late it ran, ms (latency metrics). */
      onLateness?: (ms: number) => void;
      /** Called for every tick with how long its handlers (every call) took, ms. */
      onDuration?: (ms: number) => void;
      monotonicNow?: () => number;
      wallNow?: () => number;
      setTimer?: (fn: () => void, ms: number) => NodeJS.Timeout | number;
      clearTimer?: (t: NodeJS.Timeout | number) => void;
    } = {},
  ) {
    this.preemptAfterMs = options.preemptAfterMs ?? 4;
    this.graceMs = options.graceMs ?? 4;
    this.monotonic = options.monotonicNow ?? (() => performance.now());
    this.wall = options.wallNow ?? (() => Date.now());
    this.schedule0 = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.cancel = options.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
  }

  onTick(handler: TickHandler): () => void {
    this.handlers.add(handler);
    if (this.handlers.size === 1 && this.timer === undefined) this.start();
    return () => {
      this.handlers.delete(handler);
      if (this.handlers.size === 0) this.stop();
    };
  }

  private start(): void {
    this.t0 = this.monotonic();
    this.epoch0 = this.wall();
    this.n = 0;
    this.schedule();
  }

  private stop(): void {
    if (this.timer !== undefined) this.cancel(this.timer);
    this.timer = undefined;
    this.flushDeferred();
  }

  private schedule(): void {
    const due = this.t0 + (this.n + 1) * PTIME_MS;
    this.timer = this.schedule0(() => this.fire(), Math.max(0, due - this.monotonic()));
  }

  /**
   * Runs the due tick now if it is at least `preemptAfterMs` late (see {@link MediaClock.runIfDue});
   * one monotonic-clock read otherwise. A no-op while stopped or inside a tick.
   */
  runIfDue(): void {
    if (this.timer === undefined || this.firing) return;
    const now = this.monotonic();
    if (this.deferred.length > 0 && now >= this.deferDeadline) this.flushDeferred();
    if (now < this.t0 + (this.n + 1) * PTIME_MS + this.preemptAfterMs) return;
    this.cancel(this.timer);
    this.stats.preempted++;
    this.fire();
  }

  /**
   * Defers `fn` into the grace window of the tick being emitted (see {@link MediaClock.deferTick}).
   * @returns false outside a tick, with a grace of 0, or once the window has passed
   */
  deferTick(fn: () => boolean | void): boolean {
    if (!this.firing || this.graceMs <= 0) return false;
    const deadline = this.dueNow + this.graceMs;
    const now = this.monotonic();
    if (now >= deadline) return false;
    this.deferred.push(fn);
    this.stats.deferred++;
    if (this.deferTimer === undefined) {
      this.deferDeadline = deadline;
      this.deferTimer = this.schedule0(() => {
        this.deferTimer = undefined;
        this.flushDeferred();
      }, deadline - now);
    }
    return true;
  }

  /**
   * Runs what is still deferred: each `fn` is a no-op if its call already sent, and returns `true`
   * if it still had to (counted in `deferredExpired`).
   */
  private flushDeferred(): void {
    if (this.deferTimer !== undefined) this.cancel(this.deferTimer);
    this.deferTimer = undefined;
    if (this.deferred.length === 0) return;
    const fns = this.deferred;
    this.deferred = [];
    for (const fn of fns) {
      try {
        if (fn() === true) this.stats.deferredExpired++;
      } catch (e) {
        this.options.onError?.(e);
      }
    }
  }

  private fire(): void {
    this.timer = undefined;
    this.flushDeferred();
    this.firing = true;
    try {
      this.fireDue();
    } finally {
      this.firing = false;
    }
    if (this.handlers.size > 0) this.schedule();
  }

  private fireDue(): void {
    const now = this.monotonic();
    const maxCatchUp = this.options.maxCatchUp ?? 3;
    const n0 = this.n;
    const due = Math.max(0, Math.floor((now + 0.5 - this.t0) / PTIME_MS) - n0);
    const burst = Math.min(due, maxCatchUp);
    // Ticks beyond the burst are given up; the first tick of the burst tells the handlers so.
    const behind = Math.max(0, Math.floor((now - this.t0) / PTIME_MS) - n0 - burst);
    for (let k = 0; k < burst; k++) {
      this.n++;
      const dueAt = this.t0 + this.n * PTIME_MS;
      this.dueNow = dueAt;
      this.stats.maxLateMs = Math.max(this.stats.maxLateMs, now - dueAt);
      this.options.onLateness?.(now - dueAt);
      this.emit(this.epoch0 + this.n * PTIME_MS, k === 0 ? behind : 0);
    }
    if (behind > 0) {
      this.stats.skipped += behind;
      this.n += behind;
    }
  }

  private emit(tickMs: number, skipped: number): void {
    this.stats.ticks++;
    const started = this.options.onDuration ? this.monotonic() : 0;
    for (const h of tickOrder(this.handlers, this.stats.ticks)) {
      try {
        h(tickMs, skipped);
      } catch (e) {
        this.options.onError?.(e);
      }
    }
    if (this.options.onDuration) this.options.onDuration(this.monotonic() - started);
  }
}
