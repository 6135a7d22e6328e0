import { performance } from 'node:perf_hooks';
import {
  SLOT_MS,
  TICK_SLOTS,
  TickSlots,
  PTIME_MS,
  mod,
  type MediaClock,
  type TickHandler,
  type TickSlot,
} from './clock.js';

/** Statistics of a {@link RealMediaClock}. */
export interface MediaClockStats {
  ticks: number;
  /** Slot ticks given up after a stall longer than the catch-up budget (one per used slot per tick). */
  skipped: number;
  /** Largest lateness of a tick seen, ms. */
  maxLateMs: number;
  /** Ticks run from an I/O handler by {@link RealMediaClock.runIfDue} instead of the timer. */
  preempted: number;
  /** Sends deferred into a tick's grace window ({@link RealMediaClock.deferTick}). */
  deferred: number;
  /** Of those, the ones still waiting at the deadline (their frame went out without the audio). */
  deferredExpired: number;
  /** Handlers moved to a neighbouring send slot ({@link RealMediaClock.shiftSlot}). */
  slotMoves: number;
}

/**
 * The real media clock. Tick n of slot s is due at `t0 + n·20 + s·5 ms` on the monotonic clock
 * (`performance.now`), so timer lateness never accumulates into drift; one timer, armed for the
 * next slot that has handlers ({@link TICK_SLOTS}). After a stall it catches up at most
 * `maxCatchUp` ticks per slot at once (a short burst), then skips the rest rather than bursting a
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
  private readonly slots = new TickSlots();
  private timer: NodeJS.Timeout | number | undefined;
  private t0 = 0;
  private epoch0 = 0;
  /** Last sub-tick (5 ms step from t0) run or given up. */
  private m = 0;
  /** Due time (monotonic ms) of the sub-tick the timer is armed for. */
  private nextDueAt = Infinity;
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
    slotMoves: 0,
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

  onTick(handler: TickHandler, slot: TickSlot = 0): () => void {
    this.slots.add(handler, slot);
    if (this.firing) return () => this.unsubscribe(handler); // fire() arms the timer after the tick
    if (this.timer === undefined) this.start();
    else this.rearm();
    return () => this.unsubscribe(handler);
  }

  private unsubscribe(handler: TickHandler): void {
    this.slots.remove(handler);
    if (this.slots.size === 0) this.stop();
  }

  shiftSlot(handler: TickHandler, step: 1 | -1): boolean {
    if (!this.slots.shift(handler, step)) return false;
    this.stats.slotMoves++;
    if (this.timer !== undefined && !this.firing) this.rearm();
    return true;
  }

  slotOf(handler: TickHandler): number | undefined {
    return this.slots.slotOf(handler);
  }

  phaseMs(): number {
    return mod(this.monotonic() - this.t0, PTIME_MS);
  }

  private start(): void {
    this.t0 = this.monotonic();
    this.epoch0 = this.wall();
    this.m = 0;
    this.schedule();
  }

  private stop(): void {
    if (this.timer !== undefined) this.cancel(this.timer);
    this.timer = undefined;
    this.nextDueAt = Infinity;
    this.flushDeferred();
  }

  /** Arms the timer for the next sub-tick whose slot has handlers. */
  private schedule(): void {
    const next = this.slots.nextAfter(this.m);
    if (next < 0) {
      this.timer = undefined;
      this.nextDueAt = Infinity;
      return;
    }
    this.nextDueAt = this.t0 + next * SLOT_MS;
    this.timer = this.schedule0(() => this.fire(), Math.max(0, this.nextDueAt - this.monotonic()));
  }

  /** A handler joined or moved: the next slot with handlers may now come sooner. */
  private rearm(): void {
    const next = this.slots.nextAfter(this.m);
    if (next < 0 || this.t0 + next * SLOT_MS === this.nextDueAt) return;
    if (this.timer !== undefined) this.cancel(this.timer);
    this.schedule();
  }

  /**
   * Runs the due tick now if it is at least `preemptAfterMs` late (see {@link MediaClock.runIfDue});
   * one monotonic-clock read otherwise. A no-op while stopped or inside a tick.
   */
  runIfDue(): void {
    if (this.timer === undefined || this.firing) return;
    const now = this.monotonic();
    if (this.deferred.length > 0 && now >= this.deferDeadline) this.flushDeferred();
    if (now < this.nextDueAt + this.preemptAfterMs) return;
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
    if (this.slots.size > 0) this.schedule();
    else this.timer = undefined;
  }

  private fireDue(): void {
    const now = this.monotonic();
    const maxSubTicks = (this.options.maxCatchUp ?? 3) * TICK_SLOTS;
    const last = Math.floor((now + 0.5 - this.t0) / SLOT_MS); // the latest sub-tick due
    const due = last - this.m;
    if (due <= 0) return;
    // Sub-ticks beyond the burst are given up; each slot's first tick of the burst tells its
    // handlers how many of theirs went.
    let behind: number[] | null = null;
    if (due > maxSubTicks) {
      behind = new Array<number>(TICK_SLOTS).fill(0);
      const giveUp = due - maxSubTicks;
      for (let s = 0; s < TICK_SLOTS; s++) {
        if (!this.slots.has(s)) continue;
        const first = mod(s - this.m - 1, TICK_SLOTS) + 1; // first k: (m + k) in slot s
        behind[s] = first > giveUp ? 0 : Math.floor((giveUp - first) / TICK_SLOTS) + 1;
        this.stats.skipped += behind[s]!;
      }
      this.m += giveUp;
    }
    while (this.m < last) {
      this.m++;
      const s = this.m % TICK_SLOTS;
      if (!this.slots.has(s)) continue;
      const dueAt = this.t0 + this.m * SLOT_MS;
      this.dueNow = dueAt;
      this.stats.maxLateMs = Math.max(this.stats.maxLateMs, now - dueAt);
      this.options.onLateness?.(now - dueAt);
      const skipped = behind ? behind[s]! : 0;
      if (behind) behind[s] = 0;
      this.emit(this.m, this.epoch0 + this.m * SLOT_MS, skipped);
    }
  }

  private emit(m: number, tickMs: number, skipped: number): void {
    this.stats.ticks++;
    const started = this.options.onDuration ? this.monotonic() : 0;
    this.slots.runDue(m, (h) => {
      try {
        h(tickMs, skipped);
      } catch (e) {
        this.options.onError?.(e);
      }
    });
    if (this.options.onDuration) this.options.onDuration(this.monotonic() - started);
  }
}
