/**
 * The durable callback outbox (protocol.md §4.3: a pending delivery is persisted before its first
 * attempt and resumed after a restart) with group commit: inserts and outcomes requested in one
 * turn of the event loop are written in one transaction after it (`setImmediate`). Checkpoints
 * reached in one media tick therefore cost one write, not one each; each `insert` still resolves
 * only once its row is written, so no attempt is made before the delivery is durable.
 */
import type { CallbackOutbox, CallbackRequest } from '../callbacks/http-callbacks.js';
import type { OutboxBatch, Store } from './store.js';

/** {@link CallbackOutbox} over a {@link Store}, batching writes per event-loop turn. */
export class StoreOutbox implements CallbackOutbox {
  private batch: OutboxBatch = { inserts: [], delivered: [], failed: [] };
  private written: Promise<void> | null = null;
  private seqCounter = 0;
  /** Transactions written and rows they carried (for tests and metrics). */
  readonly stats = { batches: 0, rows: 0 };

  /**
   * @param now epoch ms (the runtime clock), for `created_ms` and the enqueue order `seq`
   */
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  /** Resolves when the row is written (a failed write is logged and counted by the store; it resolves too). */
  insert(deliveryId: string, req: CallbackRequest): Promise<void> {
    const now = this.now();
    this.batch.inserts.push({
      delivery_id: deliveryId,
      seq: now * 1000 + (this.seqCounter++ % 1000),
      ordering_key: req.key,
      url: req.url,
      method: req.method,
      params: JSON.stringify(req.params),
      headers: JSON.stringify(req.headers ?? {}),
      status: 'pending',
      attempts: 0,
      created_ms: Math.floor(now),
      last_error: null,
    });
    return this.scheduled();
  }

  /** Delivered rows are deleted; failed ones keep their attempts and last error. */
  finish(
    deliveryId: string,
    status: 'delivered' | 'failed',
    attempts: number,
    lastError: string | null,
  ): Promise<void> {
    if (status === 'delivered') this.batch.delivered.push(deliveryId);
    else this.batch.failed.push({ deliveryId, attempts, lastError });
    return this.scheduled();
  }

  /** The write of the batch being collected, started after this turn. */
  private scheduled(): Promise<void> {
    this.written ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        const batch = this.batch;
        this.batch = { inserts: [], delivered: [], failed: [] };
        this.written = null;
        this.stats.batches++;
        this.stats.rows += batch.inserts.length + batch.delivered.length + batch.failed.length;
        void this.store.writeOutbox(batch).then(resolve);
      }),
    );
    return this.written;
  }
}
