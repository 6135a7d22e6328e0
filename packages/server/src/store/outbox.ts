/**
 * The durable callback outbox (protocol.md §4.3: a pending delivery is persisted before its first
 * attempt and resumed after a restart) with group commit: inserts requested in one turn of the
 * event loop are written in one transaction after it (`setImmediate`), so checkpoints reached in one
 * media tick cost one write, not one each; each `insert` resolves only once its row is written, so
 * no attempt is made before the delivery is durable. Outcomes are not urgent (a delivered row left
 * by a crash is sent again with the same delivery id, which receivers can dedupe): they ride on the
 * next insert batch, or are written {@link FINISH_DELAY_MS} after the first one at the latest.
 */
import type { CallbackOutbox, CallbackRequest } from '../callbacks/http-callbacks.js';
import type { OutboxBatch, Store } from './store.js';

/** Longest an outcome waits for an insert batch to ride on, ms. */
export const FINISH_DELAY_MS = 50;

/** {@link CallbackOutbox} over a {@link Store}, batching writes per event-loop turn. */
export class StoreOutbox implements CallbackOutbox {
  private batch: OutboxBatch = { inserts: [], delivered: [], failed: [] };
  private written: Promise<void> | null = null;
  private resolveWritten: (() => void) | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private timer: NodeJS.Timeout | null = null;
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
    const written = this.pendingWrite();
    this.immediate ??= setImmediate(() => this.writeBatch());
    return written;
  }

  /**
   * Delivered rows are deleted; failed ones keep their attempts and last error. Resolves when
   * written (with the next insert batch, or within {@link FINISH_DELAY_MS}).
   */
  finish(
    deliveryId: string,
    status: 'delivered' | 'failed',
    attempts: number,
    lastError: string | null,
  ): Promise<void> {
    if (status === 'delivered') this.batch.delivered.push(deliveryId);
    else this.batch.failed.push({ deliveryId, attempts, lastError });
    const written = this.pendingWrite();
    if (!this.immediate) this.timer ??= setTimeout(() => this.writeBatch(), FINISH_DELAY_MS);
    return written;
  }

  /**
   * Prometheus exposition of {@link stats} (`/metrics`): write transactions issued and the rows they
   * carry (a transaction that fails is counted here too, and in `callstream_store_write_errors_total`).
   */
  metricsText(): string {
    return (
      `# HELP callstream_outbox_transactions_total callback outbox write transactions issued (group commit)\n# TYPE callstream_outbox_transactions_total counter\ncallstream_outbox_transactions_total ${this.stats.batches}\n` +
      `# HELP callstream_outbox_rows_total callback outbox rows in those transactions (deliveries inserted, delivered rows deleted, failures recorded)\n# TYPE callstream_outbox_rows_total counter\ncallstream_outbox_rows_total ${this.stats.rows}\n`
    );
  }

  /** Writes what is collected now (server shutdown, before the store closes). */
  flush(): Promise<void> {
    const written = this.written ?? Promise.resolve();
    this.writeBatch();
    return written;
  }

  /** The write the batch being collected will resolve. */
  private pendingWrite(): Promise<void> {
    this.written ??= new Promise<void>((resolve) => (this.resolveWritten = resolve));
    return this.written;
  }

  private writeBatch(): void {
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timer) clearTimeout(this.timer);
    this.immediate = this.timer = null;
    const batch = this.batch;
    const resolve = this.resolveWritten;
    this.batch = { inserts: [], delivered: [], failed: [] };
    this.written = this.resolveWritten = null;
    if (!resolve) return;
    this.stats.batches++;
    this.stats.rows += batch.inserts.length + batch.delivered.length + batch.failed.length;
    void this.store.writeOutbox(batch).then(resolve);
  }
}
