/**
 * The durable callback outbox with group commit (protocol.md §4.3): what one turn asks for is one
 * transaction; an insert resolves only once its row is readable; outcomes ride on the next batch or
 * wait at most FINISH_DELAY_MS; delivered rows are deleted, failed ones kept. SQLite, and PostgreSQL when CALLSTREAM_TEST_DATABASE_URL is set (`npm run test:pg`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../src/store/store.js';
import { FINISH_DELAY_MS, StoreOutbox } from '../src/store/outbox.js';
import { testDatabaseUrl } from './helpers.js';

test('outbox: one transaction per turn; inserts durable when they resolve; delivered rows deleted, failed kept', async () => {
  const databaseUrl = await testDatabaseUrl();
  const store = await Store.open(databaseUrl ? { databaseUrl } : { sqliteFile: ':memory:' });
  const outbox = new StoreOutbox(store, () => 1_700_000_000_000);
  const req = (n: number) => ({
    key: `stream-${n % 2}`,
    url: 'http://127.0.0.1:9/status',
    method: 'POST' as const,
    params: { Event: 'PlayedStream', N: String(n) },
    headers: { 'X-Extra': 'x' },
  });

  // Five checkpoints reached in one media tick: one write, and every insert resolves after it.
  const inserted = [1, 2, 3, 4, 5].map((n) => outbox.insert(`d${n}`, req(n)));
  assert.equal(outbox.stats.batches, 0, 'nothing is written inside the turn');
  await Promise.all(inserted);
  assert.deepEqual(outbox.stats, { batches: 1, rows: 5 });
  // (exported on /metrics as counters)
  assert.match(outbox.metricsText(), /^callstream_outbox_transactions_total 1$/m);
  assert.match(outbox.metricsText(), /^callstream_outbox_rows_total 5$/m);
  const pending = await store.pendingOutbox();
  assert.deepEqual(
    pending.map((r) => [r.delivery_id, r.ordering_key, r.status, JSON.parse(r.params).N]),
    [
      ['d1', 'stream-1', 'pending', '1'],
      ['d2', 'stream-0', 'pending', '2'],
      ['d3', 'stream-1', 'pending', '3'],
      ['d4', 'stream-0', 'pending', '4'],
      ['d5', 'stream-1', 'pending', '5'],
    ],
    'rows in enqueue order',
  );
  assert.deepEqual(JSON.parse(pending[0]!.headers), { 'X-Extra': 'x' });

  // Outcomes of one turn, and an insert in the same turn: one more write.
  await Promise.all([
    outbox.finish('d1', 'delivered', 1, null),
    outbox.finish('d2', 'delivered', 2, null),
    outbox.finish('d3', 'failed', 4, 'HTTP 503 from http://127.0.0.1:9/status'),
    outbox.insert('d6', req(6)),
  ]);
  assert.deepEqual(outbox.stats, { batches: 2, rows: 9 });
  assert.deepEqual(
    (await store.pendingOutbox()).map((r) => r.delivery_id),
    ['d4', 'd5', 'd6'],
  );
  const all = await store.db.selectFrom('outbox').selectAll().orderBy('seq').execute();
  assert.deepEqual(
    all.map((r) => [r.delivery_id, r.status, Number(r.attempts), r.last_error]),
    [
      ['d3', 'failed', 4, 'HTTP 503 from http://127.0.0.1:9/status'],
      ['d4', 'pending', 0, null],
      ['d5', 'pending', 0, null],
      ['d6', 'pending', 0, null],
    ],
    'delivered rows are gone; the failed one keeps its attempts and cause',
  );

  // An outcome alone waits (up to FINISH_DELAY_MS) for an insert batch to ride on.
  const t0 = performance.now();
  const finished = outbox.finish('d4', 'delivered', 1, null);
  await new Promise((r) => setImmediate(r));
  assert.equal(outbox.stats.batches, 2, 'an outcome alone is not written at once');
  await finished;
  assert.ok(performance.now() - t0 >= FINISH_DELAY_MS - 1, 'written after the delay');
  assert.deepEqual(outbox.stats, { batches: 3, rows: 10 });
  // ...and flush() writes what is waiting at once (shutdown).
  // (Asserted on the batch count, not on elapsed time: a slow database — PostgreSQL on a VM
  // under steal took over 50 ms for the transaction — must not fail it.)
  void outbox.finish('d5', 'delivered', 1, null);
  const flushed = outbox.flush();
  assert.equal(outbox.stats.batches, 4, 'flush starts the write at once, not after the delay');
  await flushed;
  assert.deepEqual(
    (await store.pendingOutbox()).map((r) => r.delivery_id),
    ['d6'],
  );

  // A batch larger than one statement's chunk (200 rows) is still one transaction.
  await Promise.all(Array.from({ length: 450 }, (_, i) => outbox.insert(`bulk${i}`, req(i))));
  assert.equal((await store.pendingOutbox()).length, 451);
  assert.deepEqual(outbox.stats, { batches: 5, rows: 461 });
  assert.equal(store.writeErrors, 0);
  assert.match(store.metricsText(), /^callstream_store_write_errors_total 0$/m);
  // A write that fails (here: a duplicate delivery id) is logged and counted, never thrown.
  await outbox.insert('d6', req(6));
  assert.equal(store.writeErrors, 1);
  assert.match(store.metricsText(), /^callstream_store_write_errors_total 1$/m);
  await store.close();
});
