/**
 * SQLite WAL checkpoints off the media thread.
 *
 * better-sqlite3 is synchronous: with SQLite's automatic checkpoint (every 1000 WAL pages) the commit
 * that crosses the mark copies the WAL into the database file and `fsync`s it on the thread that
 * runs the media clock. Measured here with the server's write pattern (outbox inserts and deletes, a
 * 200-row progress update every second): a 3.5–5.3 ms stall every ~450 commits — every few seconds
 * at 200 streams, each one a late tick for every call. So the server's connection checkpoints
 * never (`wal_autocheckpoint = 0`) and a worker thread with its own connection runs a PASSIVE
 * checkpoint every {@link WalCheckpointer} interval; the next commit after a complete checkpoint
 * restarts the WAL from its beginning, so it stays small.
 *
 * If the worker fails, automatic checkpoints are switched back on (logged), so the WAL never grows
 * without bound.
 */
import { Worker } from 'node:worker_threads';
import type SqliteDatabase from 'better-sqlite3';
import type { Logger } from 'pino';

/** Default interval between two checkpoints, ms. */
export const WAL_CHECKPOINT_INTERVAL_MS = 1000;
/** SQLite's own default, restored if the worker fails (pages). */
const AUTOCHECKPOINT_PAGES = 1000;

/** Counters, for tests and logs. */
export interface WalCheckpointStats {
  /** Checkpoints run by the worker. */
  checkpoints: number;
  /** WAL pages copied into the database by them. */
  pagesCheckpointed: number;
  /** Longest checkpoint, ms (on the worker's thread). */
  maxMs: number;
  /** Failed checkpoints (each logged). */
  errors: number;
}

/** Runs a database file's WAL checkpoints on a worker thread; see the module comment. */
export class WalCheckpointer {
  readonly stats: WalCheckpointStats = { checkpoints: 0, pagesCheckpointed: 0, maxMs: 0, errors: 0 };
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private closing = false;
  private fellBack = false;

  /**
   * @param sqlite the server's connection (WAL mode; its automatic checkpoints are switched off)
   * @param file the database file the worker opens (must exist)
   * @param intervalMs between two checkpoints, ms
   */
  constructor(
    private readonly sqlite: SqliteDatabase.Database,
    file: string,
    private readonly logger?: Logger,
    intervalMs = WAL_CHECKPOINT_INTERVAL_MS,
  ) {
    sqlite.pragma('wal_autocheckpoint = 0');
    this.worker = new Worker(new URL('./wal-checkpoint-worker.mjs', import.meta.url), {
      workerData: { file, intervalMs },
    });
    this.worker.unref();
    this.worker.on(
      'message',
      (m: { t: 'checkpoint'; checkpointed: number; ms: number } | { t: 'error'; message: string }) => {
        if (m.t === 'checkpoint') {
          this.stats.checkpoints++;
          this.stats.pagesCheckpointed += Math.max(0, m.checkpointed);
          this.stats.maxMs = Math.max(this.stats.maxMs, m.ms);
        } else {
          this.stats.errors++;
          this.logger?.warn({ err: m.message }, 'WAL checkpoint failed (will retry)');
        }
      },
    );
    this.worker.on('error', (err) => this.fallBack(err));
    this.exited = new Promise((r) =>
      this.worker.once('exit', () => {
        if (!this.closing) this.fallBack(new Error('WAL checkpoint worker exited'));
        r();
      }),
    );
  }

  /** The worker failed: the server's connection checkpoints on its own again. */
  private fallBack(err: Error): void {
    if (this.fellBack) return;
    this.fellBack = true;
    this.logger?.error({ err }, 'WAL checkpoint worker failed; automatic checkpoints back on');
    try {
      this.sqlite.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    } catch {
      // the connection is closed: nothing left to checkpoint
    }
  }

  /** Runs a last checkpoint on the worker and stops it. Call before closing the connection. */
  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.closing = true;
    this.worker.ref(); // (unref'd while running: a server shutting down waits for the last checkpoint)
    this.worker.postMessage('close');
    await this.exited;
  }
}
