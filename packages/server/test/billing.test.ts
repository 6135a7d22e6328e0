import { test } from 'node:test';
import assert from 'node:assert/strict';
import { billStream, toHundredThousandths } from '../src/billing/billing.js';

const S = { ratePerMinute: '0.003', intervalSeconds: 60 };
const T0 = 1_736_937_000_123;

test('streams of 1 s, 59 s, 60 s, 61 s and 3601 s (protocol.md §5)', () => {
  const cases: Array<[number, number, number, string]> = [
    [1_000, 1, 60, '0.00300'],
    [59_000, 59, 60, '0.00300'],
    [60_000, 60, 60, '0.00300'],
    [61_000, 61, 120, '0.00600'],
    [3_601_000, 3601, 3660, '0.18300'],
    [60_001, 61, 120, '0.00600'],
    [20_100, 21, 60, '0.00300'],
  ];
  for (const [ms, dur, rounded, amount] of cases) {
    assert.deepEqual(
      billStream(T0, T0 + ms, S),
      { billDuration: dur, roundedBillDuration: rounded, billedAmount: amount },
      `${ms} ms`,
    );
  }
  assert.deepEqual(billStream(null, T0 + 5000, S), {
    billDuration: 0,
    roundedBillDuration: 0,
    billedAmount: '0.00000',
  });
});

test('decimal arithmetic: rates that binary floats get wrong, half-up rounding, other intervals', () => {
  assert.equal(
    billStream(T0, T0 + 1000, { ratePerMinute: '0.1', intervalSeconds: 1 }).billedAmount,
    '0.00167',
  ); // 0.001666… → half-up
  assert.equal(
    billStream(T0, T0 + 3000, { ratePerMinute: '0.1', intervalSeconds: 1 }).billedAmount,
    '0.00500',
  );
  assert.equal(
    billStream(T0, T0 + 360_000_000, { ratePerMinute: '0.00001', intervalSeconds: 60 }).billedAmount,
    '0.06000',
  );
  assert.equal(
    billStream(T0, T0 + 90_000, { ratePerMinute: '12.34567', intervalSeconds: 30 }).billedAmount,
    '18.51851',
  ); // 18.518505 → half-up
  assert.throws(() => toHundredThousandths('0.000001'), /at most 5 decimals/);
  assert.throws(() => toHundredThousandths('-1'), /invalid rate/);
});

test('a stream billed on a fake clock: 61 s of media → 61 / 120 / "0.00600" on its record', async () => {
  const { harness, until } = await import('./helpers.js');
  const { TestWsApp } = await import('../src/testing/index.js');
  const { streamRow } = await import('../src/store/records.js');
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url());
  await app.waitForStarts(1);
  h.clock.advance(5_000); // before the first media: not billed
  h.leg.frame(new Uint8Array(160).fill(0xff), h.clock.now());
  await until(() => stream.firstMediaAt !== null, 'first media');
  h.clock.advance(61_000);
  stream.stop('api_request');
  const row = streamRow(stream, h.runtime.config);
  assert.deepEqual([row.bill_duration, row.rounded_bill_duration, row.billed_amount], [61, 120, '0.00600']);
  h.call.hangup();
  await app.close();
});
