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
 * Send slots: the 20 ms tick is divided into {@link TICK_SLOTS} slots {@link SLOT_MS} apart; a
 * handler runs once per tick, in its slot (due at tick due time + slot × 5 ms). Still one clock on
 * one grid — the slot is only the handler's phase on it. A call moves its slot (one step at a time,
 * so one packet interval is 15 or 25 ms and every other stays 20) to send just after its app's
 * audio arrives: an app that answers each caller frame at once then waits < 5 ms for its turn
 * instead of up to 20 (`call/send-phase.ts`). Spreading calls over the slots also splits one large
 * burst of work per tick into four smaller ones.
 */
export const TICK_SLOTS = 4;
/** Distance between two send slots, ms. */
export const SLOT_MS = PTIME_MS / TICK_SLOTS;

/**
 * `a` modulo `n` in [0, n) — a position on a circle (send slots, the 20 ms period). JS's `%` keeps
 * the sign of `a`, which once put a slot's skipped count wrong after 40 ms of clock (991540b).
 */
export function mod(a: number, n: number): number {
  const r = a % n;
  return r < 0 ? r + n : r;
}

/** Where {@link MediaClock.onTick} puts a handler: a slot 0…3, or `'spread'`: the least used one. */
export type TickSlot = number | 'spread';

/**
 * The one media clock: a single drift-free 20 ms tick that drives all playout of all calls.
 */
export interface MediaClock {
  /**
   * Subscribes to ticks; returns the unsubscribe function.
   * @param slot the handler's send slot (default 0; see {@link TICK_SLOTS})
   */
  onTick(handler: TickHandler, slot?: TickSlot): () => void;
  /**
   * Moves a subscribed handler one slot later (+1) or earlier (−1), effective from its next tick:
   * that tick runs 25 (or 15) ms after its last one, the following ones 20 ms apart again.
   * @returns false (nothing changed) for an unknown handler, one that has not run since its last
   *   move, or a clock without slots
   */
  shiftSlot?(handler: TickHandler, step: 1 | -1): boolean;
  /** The slot a subscribed handler runs in, or undefined. */
  slotOf?(handler: TickHandler): number | undefined;
  /** Position of the present moment in the 20 ms period, ms in [0, 20): 0 = slot 0's due time. */
  phaseMs?(): number;
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

interface SlotEntry {
  readonly handler: TickHandler;
  slot: number;
  /** Sub-tick index (5 ms steps from the clock's start) of the handler's last run; -1: none yet. */
  last: number;
  /** The handler does not run before this sub-tick (set by a shift; one full tick ± one slot). */
  notBefore: number;
}

/**
 * The handlers of a slotted media clock, by slot (shared by {@link RealMediaClock} and the fake
 * clock). Time is counted in sub-ticks: sub-tick `m` is due `m × SLOT_MS` after the clock's start
 * and belongs to slot `m mod TICK_SLOTS` of tick `floor(m / TICK_SLOTS)`. Pure bookkeeping.
 */
export class TickSlots {
  private readonly bySlot: Array<Set<SlotEntry>> = Array.from({ length: TICK_SLOTS }, () => new Set());
  private readonly entries = new Map<TickHandler, SlotEntry>();

  /** Subscribed handlers. */
  get size(): number {
    return this.entries.size;
  }

  /** Adds (or re-adds) `handler` in `slot`; returns the slot used. */
  add(handler: TickHandler, slot: TickSlot = 0): number {
    this.remove(handler);
    const s = slot === 'spread' ? this.leastUsed() : mod(Math.trunc(slot), TICK_SLOTS);
    const e: SlotEntry = { handler, slot: s, last: -1, notBefore: -1 };
    this.entries.set(handler, e);
    this.bySlot[s]!.add(e);
    return s;
  }

  remove(handler: TickHandler): void {
    const e = this.entries.get(handler);
    if (!e) return;
    this.entries.delete(handler);
    this.bySlot[e.slot]!.delete(e);
  }

  slotOf(handler: TickHandler): number | undefined {
    return this.entries.get(handler)?.slot;
  }

  /** See {@link MediaClock.shiftSlot}. */
  shift(handler: TickHandler, step: 1 | -1): boolean {
    const e = this.entries.get(handler);
    if (!e || e.notBefore > e.last) return false;
    this.bySlot[e.slot]!.delete(e);
    e.slot = mod(e.slot + step, TICK_SLOTS);
    this.bySlot[e.slot]!.add(e);
    if (e.last >= 0) e.notBefore = e.last + TICK_SLOTS + step;
    return true;
  }

  /** The slot with the fewest handlers (the lowest on a tie). */
  leastUsed(): number {
    let best = 0;
    for (let s = 1; s < TICK_SLOTS; s++) if (this.bySlot[s]!.size < this.bySlot[best]!.size) best = s;
    return best;
  }

  /** True if slot `s` has handlers. */
  has(s: number): boolean {
    return this.bySlot[s]!.size > 0;
  }

  /** The first sub-tick after `m` whose slot has handlers; -1 if there are none. */
  nextAfter(m: number): number {
    for (let k = 1; k <= TICK_SLOTS; k++) if (this.bySlot[(m + k) % TICK_SLOTS]!.size > 0) return m + k;
    return -1;
  }

  /**
   * Runs the handlers due at sub-tick `m` ({@link tickOrder} within the slot, rotated per tick),
   * skipping those held back by a shift. `run` is called per handler; it catches what it needs to.
   */
  runDue(m: number, run: (handler: TickHandler) => void): void {
    const set = this.bySlot[m % TICK_SLOTS]!;
    if (set.size === 0) return;
    for (const e of tickOrder(set, Math.floor(m / TICK_SLOTS))) {
      if (m < e.notBefore || e.slot !== m % TICK_SLOTS) continue; // moved by an earlier handler
      e.last = m;
      run(e.handler);
    }
  }
}
