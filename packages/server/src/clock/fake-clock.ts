import {
  PTIME_MS,
  SLOT_MS,
  mod,
  TickSlots,
  type Clock,
  type MediaClock,
  type TickHandler,
  type TickSlot,
  type TimerHandle,
} from './clock.js';

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A fake {@link Clock} and {@link MediaClock} for tests: time moves only when the test calls
 * {@link advance} (synchronous) or {@link advanceAsync} (yields to real I/O between 20 ms steps).
 * Ticks fall on multiples of 20 ms from the start time (plus 5 ms per send slot, when
 * {@link slotted}); timers and ticks fire in time order.
 */
export class FakeClock implements Clock, MediaClock {
  private current: number;
  private readonly timers = new Map<number, FakeTimer>();
  private readonly slots = new TickSlots();
  private readonly start: number;
  private nextId = 1;
  /** Last sub-tick (5 ms step from the start) run or passed. */
  private m = 0;
  private inTick = false;
  /**
   * Send slots in use (see `TICK_SLOTS`): false (the default) puts every handler in slot 0 and
   * refuses {@link shiftSlot}, so tests that do not opt in see every tick on the 20 ms grid.
   */
  slotted = false;
  /**
   * Grace window (ms) {@link deferTick} offers; 0 (the default) declines every deferral, so tests
   * that do not opt in see every frame sent exactly on its tick.
   */
  graceMs = 0;
  /** Exceptions thrown by tick handlers, kept for assertions. */
  readonly errors: unknown[] = [];

  /** @param startMs initial epoch ms (a multiple of 20 keeps tick times round) */
  constructor(startMs = 1_736_937_000_000) {
    this.current = startMs;
    this.start = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { id, at: this.current + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.timers.delete(handle as unknown as number);
  }

  onTick(handler: TickHandler, slot: TickSlot = 0): () => void {
    this.slots.add(handler, this.slotted ? slot : 0);
    return () => this.slots.remove(handler);
  }

  shiftSlot(handler: TickHandler, step: 1 | -1): boolean {
    return this.slotted && this.slots.shift(handler, step);
  }

  slotOf(handler: TickHandler): number | undefined {
    return this.slots.slotOf(handler);
  }

  phaseMs(): number {
    return mod(this.current - this.start, PTIME_MS);
  }

  deferTick(fn: () => boolean | void): boolean {
    if (!this.inTick || this.graceMs <= 0) return false;
    this.setTimeout(() => void fn(), this.graceMs);
    return true;
  }

  /** Number of pending timers (for leak assertions). */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Milliseconds until the earliest pending timer, or `null` if none. */
  nextTimerIn(): number | null {
    let at = Infinity;
    for (const t of this.timers.values()) at = Math.min(at, t.at);
    return at === Infinity ? null : at - this.current;
  }

  /** Moves time forward by `ms`, firing due timers and ticks in order. */
  advance(ms: number): void {
    const end = this.current + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.timers.values())
        if (!next || t.at < next.at || (t.at === next.at && t.id < next.id)) next = t;
      const timerAt = next ? next.at : Infinity;
      const sub = this.slots.nextAfter(this.m);
      const tickAt = sub < 0 ? Infinity : this.start + sub * SLOT_MS;
      if (timerAt > end && tickAt > end) break;
      if (next && timerAt <= tickAt) {
        this.current = timerAt;
        this.timers.delete(next.id);
        next.fn();
      } else {
        this.current = tickAt;
        this.m = sub;
        this.inTick = true;
        this.slots.runDue(sub, (h) => {
          try {
            h(this.current, 0);
          } catch (e) {
            this.errors.push(e);
          }
        });
        this.inTick = false;
      }
    }
    this.current = end;
    // Sub-ticks passed with no handlers are gone: a handler added now starts at the next one.
    this.m = Math.max(this.m, Math.floor((end - this.start) / SLOT_MS));
  }

  /**
   * Moves time forward in `stepMs` steps, letting real I/O (sockets) run between steps.
   * @param ioTurns event-loop turns to yield per step
   */
  async advanceAsync(ms: number, stepMs = PTIME_MS, ioTurns = 2): Promise<void> {
    let left = ms;
    while (left > 0) {
      const step = Math.min(stepMs, left);
      this.advance(step);
      left -= step;
      for (let i = 0; i < ioTurns; i++) await new Promise<void>((r) => setImmediate(r));
    }
  }
}
