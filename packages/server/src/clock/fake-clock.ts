import {
  PTIME_MS,
  tickOrder,
  type Clock,
  type MediaClock,
  type TickHandler,
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
 * Ticks fall on multiples of 20 ms from the start time; timers and ticks fire in time order.
 */
export class FakeClock implements Clock, MediaClock {
  private current: number;
  private readonly timers = new Map<number, FakeTimer>();
  private readonly handlers = new Set<TickHandler>();
  private nextId = 1;
  private nextTick: number;
  private inTick = false;
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
    this.nextTick = startMs + PTIME_MS;
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

  onTick(handler: TickHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
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
      if (timerAt > end && this.nextTick > end) break;
      if (next && timerAt <= this.nextTick) {
        this.current = timerAt;
        this.timers.delete(next.id);
        next.fn();
      } else {
        this.current = this.nextTick;
        this.nextTick += PTIME_MS;
        this.inTick = true;
        for (const h of tickOrder(this.handlers, Math.round(this.current / PTIME_MS))) {
          try {
            h(this.current, 0);
          } catch (e) {
            this.errors.push(e);
          }
        }
        this.inTick = false;
      }
    }
    this.current = end;
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
