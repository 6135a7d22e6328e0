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
