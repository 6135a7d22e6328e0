import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, RealMediaClock } from '../src/index.js';

/** A hand-driven timer source: the test decides when the one pending timer fires and what time it is. */
function manualTime() {
  let now = 1000;
  let pending: { fn: () => void; delay: number } | null = null;
  const delays: number[] = [];
  return {
    delays,
    set now(v: number) {
      now = v;
    },
    get now() {
      return now;
    },
    options: {
      monotonicNow: () => now,
      wallNow: () => 1_700_000_000_000 + now,
      setTimer: (fn: () => void, ms: number) => {
        pending = { fn, delay: ms };
        delays.push(ms);
        return 1;
      },
      clearTimer: () => {
        pending = null;
      },
    },
    fire() {
      const p = pending;
      pending = null;
      p?.fn();
    },
    get pending() {
      return pending;
    },
  };
}

test('real media clock: late timers do not accumulate drift; tick times stay on the 20 ms grid', () => {
  const t = manualTime();
  const clock = new RealMediaClock(t.options);
  const ticks: number[] = [];
  const off = clock.onTick((ms) => ticks.push(ms));
  assert.equal(t.delays[0], 20);
  for (let n = 1; n <= 50; n++) {
    t.now = 1000 + n * 20 + 3; // every timer fires 3 ms late
    t.fire();
  }
  assert.equal(ticks.length, 50);
  assert.deepEqual(
    ticks.slice(0, 3).map((x) => x - 1_700_000_001_000),
    [20, 40, 60],
  );
  assert.equal(ticks[49]! - 1_700_000_001_000, 1000, 'the 50th tick is due exactly 1 s after start');
  assert.equal(t.delays.at(-1), 17, 'the next timer is shortened by the lateness');
  assert.equal(clock.stats.skipped, 0);
  off();
  assert.equal(t.pending, null, 'no subscribers: the clock stops');
});

test('real media clock: after a 200 ms stall it catches up at most 3 ticks and skips the rest', () => {
  const t = manualTime();
  const clock = new RealMediaClock({ ...t.options, maxCatchUp: 3 });
  let count = 0;
  clock.onTick(() => {
    count++;
    if (count === 2) throw new Error('a failing handler does not stop the clock');
  });
  t.now = 1020;
  t.fire();
  t.now = 1240; // stalled: ticks due at 1040 … 1240 (11 of them)
  t.fire();
  assert.equal(count, 4, '1 + at most 3 in the burst');
  assert.equal(clock.stats.skipped, 8);
  t.now = 1260;
  t.fire();
  assert.equal(count, 5, 'back on the grid');
});

test('fake clock: timers and ticks fire in time order', () => {
  const c = new FakeClock(0);
  const log: string[] = [];
  c.onTick((ms) => log.push(`tick ${ms}`));
  c.setTimeout(() => log.push('timer 30'), 30);
  const h = c.setTimeout(() => log.push('cancelled'), 10);
  c.clearTimeout(h);
  c.setTimeout(() => log.push('timer 40'), 40);
  c.advance(45);
  assert.deepEqual(log, ['tick 20', 'timer 30', 'timer 40', 'tick 40']);
  assert.equal(c.now(), 45);
});

test('real media clock: runIfDue runs a tick ≥ 4 ms late from an I/O handler, never earlier, never inside a tick, and re-arms the timer', () => {
  const t = manualTime();
  const clock = new RealMediaClock(t.options);
  const ticks: number[] = [];
  let nested = 0;
  clock.onTick((ms) => {
    ticks.push(ms - 1_700_000_001_000);
    clock.runIfDue(); // a handler that ends up in an I/O path: must not recurse
    nested++;
  });
  t.now = 1019.9; // before the first tick is due: an I/O batch item finds nothing to do
  clock.runIfDue();
  assert.deepEqual(ticks, []);
  t.now = 1023.9; // due, but less than 4 ms late: the batch may finish first, the timer follows
  clock.runIfDue();
  assert.deepEqual(ticks, []);
  assert.equal(clock.stats.preempted, 0);
  t.now = 1024.4; // 4.4 ms late: the batch item runs the tick instead of waiting for the timer
  clock.runIfDue();
  assert.deepEqual(ticks, [20]);
  assert.equal(nested, 1, 'runIfDue inside the tick was a no-op');
  assert.equal(clock.stats.preempted, 1);
  assert.ok(t.pending, 'the timer was re-armed');
  assert.equal(t.delays.at(-1)!.toFixed(1), '15.6', 'for the next tick on the 20 ms grid');
  clock.runIfDue(); // same instant, the next tick is not due
  assert.deepEqual(ticks, [20]);
  t.now = 1043.9; // due and 3.9 ms late: still the timer's
  clock.runIfDue();
  assert.deepEqual(ticks, [20]);
  t.fire(); // the timer still drives ticks when no I/O arrives
  assert.deepEqual(ticks, [20, 40]);
  assert.equal(clock.stats.ticks, 2);
});

/** Hand-driven time with any number of timers: `advanceTo(ms)` fires the due ones in time order. */
function timeline() {
  let now = 1000;
  let nextId = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    get now() {
      return now;
    },
    set now(v: number) {
      now = v;
    },
    get pending() {
      return timers.size;
    },
    options: {
      monotonicNow: () => now,
      wallNow: () => 1_700_000_000_000 + now,
      setTimer: (fn: () => void, ms: number) => {
        const id = nextId++;
        timers.set(id, { at: now + ms, fn });
        return id;
      },
      clearTimer: (id: NodeJS.Timeout | number) => void timers.delete(id as number),
    },
    advanceTo(target: number) {
      for (;;) {
        let first: [number, { at: number; fn: () => void }] | undefined;
        for (const e of timers) if (e[1].at <= target && (!first || e[1].at < first[1].at)) first = e;
        if (!first) break;
        timers.delete(first[0]);
        now = Math.max(now, first[1].at);
        first[1].fn();
      }
      now = target;
    },
  };
}

test('real media clock: deferTick holds work into the tick grace window (due + 4 ms), run at the deadline, by runIfDue after it, or before the next tick', () => {
  const t = timeline();
  const clock = new RealMediaClock(t.options);
  const log: string[] = [];
  let defer = true;
  let heldStill = true;
  clock.onTick((ms) => {
    const tick = ms - 1_700_000_001_000;
    log.push(`tick ${tick}`);
    if (defer) {
      const ok = clock.deferTick(() => {
        log.push(`deferred ${tick} ran at ${t.now.toFixed(1)}`);
        return heldStill;
      });
      log.push(`defer ${ok}`);
    }
  });
  assert.equal(
    clock.deferTick(() => undefined),
    false,
    'outside a tick nothing is deferred',
  );
  // Tick 20 runs 1 ms late; its deferred work runs at the deadline, 1024.
  t.advanceTo(1021);
  t.advanceTo(1030);
  assert.deepEqual(log, ['tick 20', 'defer true', 'deferred 20 ran at 1024.0']);
  assert.equal(clock.stats.deferred, 1);
  assert.equal(clock.stats.deferredExpired, 1, 'the work still had to be done at the deadline');
  // Tick 40: the holder finished early (its audio arrived), so the deadline call is not counted.
  log.length = 0;
  heldStill = false;
  t.advanceTo(1050);
  assert.deepEqual(log, ['tick 40', 'defer true', 'deferred 40 ran at 1044.0']);
  assert.equal(clock.stats.deferredExpired, 1);
  // Tick 60 runs 4.5 ms late: its grace has passed, nothing can be deferred.
  log.length = 0;
  t.now = 1064.5;
  clock.runIfDue(); // an I/O item finds the tick due and ≥ 4 ms late
  assert.deepEqual(log, ['tick 60', 'defer false']);
  // Tick 80 on time; an I/O batch holds the loop past the deadline: runIfDue runs the work at once.
  log.length = 0;
  t.advanceTo(1080);
  assert.deepEqual(log, ['tick 80', 'defer true']);
  t.now = 1084.2;
  clock.runIfDue();
  assert.deepEqual(log, ['tick 80', 'defer true', 'deferred 80 ran at 1084.2']);
  assert.equal(clock.stats.deferred, 3);
  // A grace of 0 declines every deferral.
  const t2 = timeline();
  const strict = new RealMediaClock({ ...t2.options, graceMs: 0 });
  let declined: boolean | undefined;
  strict.onTick(() => (declined = strict.deferTick(() => undefined)));
  t2.advanceTo(1020);
  assert.equal(declined, false);
});

test('send slots: handlers run 5 ms apart by slot, spread fills the least used slot, tick times carry the slot offset', () => {
  const t = timeline();
  const clock = new RealMediaClock(t.options);
  const log: string[] = [];
  const handler = (name: string) => (ms: number) => log.push(`${name}@${ms - 1_700_000_001_000}`);
  const a = handler('a');
  const c = handler('c');
  clock.onTick(a); // slot 0 by default
  clock.onTick(c, 2);
  const spread = ['s1', 's2', 's3'].map((n) => {
    const h = handler(n);
    clock.onTick(h, 'spread');
    return clock.slotOf(h);
  });
  assert.deepEqual(spread, [1, 3, 0], 'empty slots first (1, 3), then the lowest of the least used');
  t.advanceTo(1040);
  // (within a slot the order rotates one place per tick)
  assert.deepEqual(log, [
    's1@5',
    'c@10',
    's2@15',
    's3@20',
    'a@20',
    's1@25',
    'c@30',
    's2@35',
    'a@40',
    's3@40',
  ]);
  assert.equal(clock.phaseMs(), 0);
  t.now = 1047.5;
  assert.equal(clock.phaseMs(), 7.5);
});

test('send slots: a shift moves a handler one slot — one 25 ms (or 15 ms) interval, then 20 ms again; a second shift waits for a run', () => {
  const t = timeline();
  const clock = new RealMediaClock(t.options);
  const runs: number[] = [];
  const h = (ms: number) => runs.push(ms - 1_700_000_001_000);
  clock.onTick(h, 1);
  t.advanceTo(1030); // ran at 5, 25
  assert.equal(clock.shiftSlot(h, 1), true);
  assert.equal(clock.shiftSlot(h, 1), false, 'not again before it has run in its new slot');
  t.advanceTo(1100);
  assert.equal(clock.slotOf(h), 2);
  assert.equal(clock.shiftSlot(h, -1), true);
  assert.equal(clock.shiftSlot(h, -1), false);
  t.advanceTo(1160);
  assert.deepEqual(runs, [5, 25, 50, 70, 90, 105, 125, 145]);
  assert.equal(clock.stats.slotMoves, 2, 'refused shifts are not counted');
  const intervals = runs.slice(1).map((r, i) => r - runs[i]!);
  assert.deepEqual(intervals, [20, 25, 20, 20, 15, 20, 20]);
  // Shifting a handler in the slot before 0 wraps round: slot 0 → 3 is one tick of 15 ms.
  const w: number[] = [];
  const g = (ms: number) => w.push(ms - 1_700_000_001_000);
  clock.onTick(g, 0); // at 1160, slot 0's due time: it runs at once
  t.advanceTo(1181); // g ran at 160, 180
  assert.equal(clock.shiftSlot(g, -1), true);
  t.advanceTo(1240);
  assert.equal(clock.slotOf(g), 3);
  assert.deepEqual(w, [160, 180, 195, 215, 235]);
});

test('send slots: after a stall each used slot catches up at most maxCatchUp ticks and reports what it skipped', () => {
  const t = timeline();
  const clock = new RealMediaClock({ ...t.options, maxCatchUp: 3 });
  const seen: Record<string, Array<[number, number]>> = { a: [], b: [] };
  clock.onTick((ms, skipped) => seen.a!.push([ms - 1_700_000_001_000, skipped]), 0);
  clock.onTick((ms, skipped) => seen.b!.push([ms - 1_700_000_001_000, skipped]), 2);
  t.advanceTo(1030); // a@20, b@10, b@30 (t0 = 1000)
  t.now = 1240; // stalled: slot 0 due at 40 … 240 (11), slot 2 due at 50 … 230 (10)
  clock.runIfDue();
  assert.deepEqual(seen.a, [
    [20, 0],
    [200, 8],
    [220, 0],
    [240, 0],
  ]);
  assert.deepEqual(seen.b, [
    [10, 0],
    [30, 0],
    [190, 7],
    [210, 0],
    [230, 0],
  ]);
  assert.equal(clock.stats.skipped, 15);
  // The same an hour into the clock (sub-tick numbers in the hundreds of thousands).
  t.advanceTo(1000 + 3_600_010); // a@…000, b@…010 ran on time
  const [a0, b0] = [seen.a!.length, seen.b!.length];
  t.now = 1000 + 3_600_010 + 210; // slot 0 due at …020 … …220 (11), slot 2 at …030 … …210 (10)
  clock.runIfDue();
  assert.deepEqual(
    seen.a!.slice(a0).map(([, skipped]) => skipped),
    [8, 0, 0],
  );
  assert.deepEqual(
    seen.b!.slice(b0).map(([, skipped]) => skipped),
    [7, 0, 0],
  );
  assert.equal(clock.stats.skipped, 30);
});
