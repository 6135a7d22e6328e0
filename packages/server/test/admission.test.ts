/**
 * Call admission control (call/admission.ts): the concurrency cap, the token-bucket rate limit on a
 * fake clock, what a refusal carries (code, HTTP status, Retry-After) and the once-per-episode log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CallAdmission,
  CapacityError,
  EPISODE_QUIET_MS,
  LoadMeter,
  type AdmissionLimits,
} from '../src/call/admission.js';
import { FakeClock } from '../src/testing/index.js';

function refusal(fn: () => unknown): CapacityError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CapacityError, `expected a CapacityError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to be refused');
}

test('maxConcurrent: the call over the limit is refused until one ends; a ticket releases once', () => {
  const clock = new FakeClock();
  const admission = new CallAdmission({ maxConcurrent: 2, maxPerSecond: 0 }, () => clock.now());
  const a = admission.admit();
  const b = admission.admit();
  assert.equal(admission.active, 2);
  const err = refusal(() => admission.admit());
  assert.equal(err.reason, 'max_concurrent');
  assert.equal(err.code, 'capacity_exceeded');
  assert.equal(err.status, 503);
  assert.equal(err.retryable, true);
  assert.equal(err.retryAfterS, null, 'no Retry-After: when a place frees is unknown');
  a.release();
  a.release(); // idempotent: frees one place, not two
  assert.equal(admission.active, 1);
  const c = admission.admit();
  refusal(() => admission.admit());
  b.release();
  c.release();
  assert.equal(admission.active, 0);
  assert.deepEqual(admission.stats, {
    admitted: 3,
    refused: { max_concurrent: 2, max_rate: 0, overload: 0 },
  });
});

test('maxPerSecond: a burst of one second, then one call per 1/rate s; Retry-After says when', () => {
  const clock = new FakeClock();
  const admission = new CallAdmission({ maxConcurrent: 0, maxPerSecond: 4 }, () => clock.now());
  for (let i = 0; i < 4; i++) admission.admit();
  const err = refusal(() => admission.admit());
  assert.equal(err.reason, 'max_rate');
  assert.equal(err.retryAfterS, 1);
  clock.advance(240); // 0.96 tokens
  refusal(() => admission.admit());
  clock.advance(20); // 1.04 tokens
  admission.admit();
  refusal(() => admission.admit());
  clock.advance(10_000); // refills to the burst of 4, no more
  for (let i = 0; i < 4; i++) admission.admit();
  refusal(() => admission.admit());
  assert.equal(admission.active, 9, 'the rate limit does not cap concurrency');
  assert.deepEqual(admission.stats.refused, { max_concurrent: 0, max_rate: 4, overload: 0 });
});

test('a rate under one per second: a burst of one call, Retry-After in whole seconds', () => {
  const clock = new FakeClock();
  const admission = new CallAdmission({ maxConcurrent: 0, maxPerSecond: 0.25 }, () => clock.now());
  admission.admit();
  assert.equal(refusal(() => admission.admit()).retryAfterS, 4);
  clock.advance(2500); // 0.625 tokens: 1.5 s to go
  assert.equal(refusal(() => admission.admit()).retryAfterS, 2);
  clock.advance(1500);
  admission.admit();
});

test('a call refused for concurrency takes no rate token', () => {
  const clock = new FakeClock();
  const admission = new CallAdmission({ maxConcurrent: 1, maxPerSecond: 2 }, () => clock.now());
  const first = admission.admit(); // 1 token left
  for (let i = 0; i < 5; i++) assert.equal(refusal(() => admission.admit()).reason, 'max_concurrent');
  first.release();
  admission.admit(); // the token the refusals did not take
  assert.equal(admission.stats.admitted, 2);
});

test('a wall clock stepped back refills nothing (and takes nothing back)', () => {
  let now = 1_000_000;
  const admission = new CallAdmission({ maxConcurrent: 0, maxPerSecond: 1 }, () => now);
  admission.admit();
  now -= 60_000;
  refusal(() => admission.admit());
  now += 1000; // one second after the step: one token
  admission.admit();
});

test('onChange: one notice when refusals start and one when calls are admitted again after a quiet second', () => {
  const clock = new FakeClock();
  const changes: Array<string | null> = [];
  const limits: AdmissionLimits = { maxConcurrent: 1, maxPerSecond: 0 };
  const admission = new CallAdmission(
    limits,
    () => clock.now(),
    (r) => changes.push(r),
  );
  let t = admission.admit();
  for (let i = 0; i < 3; i++) refusal(() => admission.admit());
  t.release();
  clock.advance(EPISODE_QUIET_MS - 1);
  t = admission.admit(); // admitted, but within a second of a refusal: the episode goes on
  refusal(() => admission.admit());
  t.release();
  clock.advance(EPISODE_QUIET_MS);
  admission.admit();
  assert.deepEqual(changes, ['max_concurrent', null]);
});

test('onChange: a flood at twice the rate limit (admit, refuse, admit, …) is one episode', () => {
  const clock = new FakeClock();
  const changes: Array<string | null> = [];
  const admission = new CallAdmission(
    { maxConcurrent: 0, maxPerSecond: 10 },
    () => clock.now(),
    (r) => changes.push(r),
  );
  let admitted = 0;
  for (let i = 0; i < 400; i++) {
    clock.advance(50); // 20 calls a second
    try {
      admission.admit();
      admitted++;
    } catch (e) {
      assert.ok(e instanceof CapacityError);
    }
  }
  assert.ok(admitted >= 200 && admitted <= 211, `admitted ${admitted} of 400 in 20 s at 10/s`);
  assert.deepEqual(changes, ['max_rate']);
});

test('invalid limits are refused at construction', () => {
  const now = () => 0;
  assert.throws(() => new CallAdmission({ maxConcurrent: -1, maxPerSecond: 0 }, now), RangeError);
  assert.throws(() => new CallAdmission({ maxConcurrent: 1.5, maxPerSecond: 0 }, now), RangeError);
  assert.throws(() => new CallAdmission({ maxConcurrent: 0, maxPerSecond: NaN }, now), RangeError);
  assert.throws(
    () => new CallAdmission({ maxConcurrent: 0, maxPerSecond: 0, maxLoad: 1.5 }, now),
    RangeError,
  );
});

test('maxLoad: refused with Retry-After 1 while the load reading is at or over it; no rate token taken', () => {
  const clock = new FakeClock();
  let load = 0.95;
  const admission = new CallAdmission(
    { maxConcurrent: 0, maxPerSecond: 1, maxLoad: 0.9 },
    () => clock.now(),
    undefined,
    () => load,
  );
  const err = refusal(() => admission.admit());
  assert.equal(err.reason, 'overload');
  assert.equal(err.retryAfterS, 1);
  assert.match(err.message, /95 % busy.*calls\.maxLoad 0\.9/);
  load = 0.9;
  refusal(() => admission.admit());
  load = 0.5;
  admission.admit(); // the one token is still there
  assert.equal(refusal(() => admission.admit()).reason, 'max_rate');
  assert.deepEqual(admission.stats.refused, { max_concurrent: 0, max_rate: 1, overload: 2 });
});

test('LoadMeter: the event loop busy for a whole second reads ~1, idle reads ~0; read once a second', async () => {
  const clock = new FakeClock();
  const meter = new LoadMeter(clock);
  try {
    assert.equal(meter.utilization, 0, 'nothing before the first second');
    const until = performance.now() + 200;
    while (performance.now() < until); // the loop busy (no I/O wait) for 200 ms
    clock.advance(1000);
    assert.ok(meter.utilization > 0.9, `busy: ${meter.utilization}`);
    await new Promise((r) => setTimeout(r, 200)); // the loop idle, waiting on a timer
    clock.advance(999);
    assert.ok(meter.utilization > 0.9, 'not read again before the second is over');
    clock.advance(1);
    assert.ok(meter.utilization < 0.3, `idle: ${meter.utilization}`);
  } finally {
    meter.stop();
  }
  assert.equal(clock.pendingTimers, 0, 'stop() ends the timer');
});
