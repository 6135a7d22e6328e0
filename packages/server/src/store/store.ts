/**
 * Durable records: kysely over SQLite (a file, the embedded default) or PostgreSQL (a URL).
 * Migrations run at open. State writes go through one serial queue so they land in the order the
 * engine produced them; a failed write is logged and counted, never thrown into the media path.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import {
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteDialect,
  type SqliteDatabase as KyselySqliteDatabase,
  type Insertable,
  type Selectable,
  type Updateable,
} from 'kysely';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { WalCheckpointer } from './wal-checkpointer.js';
import {
  migrationProvider,
  type CallsTable,
  type Database,
  type OutboxTable,
  type StreamsTable,
} from './schema.js';

/** A stored call. */
export type CallRow = Selectable<CallsTable>;
/** A stored stream. */
export type StreamRow = Selectable<StreamsTable>;
/** A stored callback delivery. */
export type OutboxRow = Selectable<OutboxTable>;

/** Where to store: a PostgreSQL URL, else a SQLite file (`:memory:` for tests). */
export interface StoreOptions {
  databaseUrl?: string | undefined;
  sqliteFile?: string;
  logger?: Logger;
}

/** Outbox changes written together by {@link Store.writeOutbox}. */
export interface OutboxBatch {
  inserts: Array<Insertable<OutboxTable>>;
  /** Delivery ids delivered (their rows are deleted). */
  delivered: string[];
  failed: Array<{ deliveryId: string; attempts: number; lastError: string | null }>;
}

/** Rows per outbox statement (11 parameters per inserted row; well under SQLite's and PostgreSQL's limits). */
const OUTBOX_CHUNK = 200;

/** What {@link Store.recover} closed after an unclean stop. */
export interface RecoveryReport {
  streams: number;
  calls: number;
  pendingCallbacks: number;
}

const toNumber = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** The record store. */
export class Store {
  /** Writes that failed (logged). */
  writeErrors = 0;
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly db: Kysely<Database>,
    readonly kind: 'sqlite' | 'postgres',
    private readonly logger?: Logger,
    /** SQLite file stores: WAL checkpoints on a worker thread (wal-checkpointer.ts). */
    readonly walCheckpointer: WalCheckpointer | null = null,
  ) {}

  /**
   * Opens the store and applies migrations.
   * @throws Error if the database cannot be opened or migrated (start-up fails loudly)
   */
  static async open(options: StoreOptions): Promise<Store> {
    let db: Kysely<Database>;
    let kind: 'sqlite' | 'postgres';
    let sqliteFile: { sqlite: SqliteDatabase.Database; file: string } | null = null;
    if (options.databaseUrl) {
      kind = 'postgres';
      db = new Kysely<Database>({
        dialect: new PostgresDialect({
          pool: new pg.Pool({ connectionString: options.databaseUrl, max: 5 }),
        }),
      });
    } else {
      kind = 'sqlite';
      const file = options.sqliteFile ?? 'callstream.db';
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      const sqlite = new SqliteDatabase(file);
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
      db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingStatements(sqlite) }) });
      if (file !== ':memory:') sqliteFile = { sqlite, file };
    }
    const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
    if (error) {
      await db.destroy();
      throw new Error(`database migration failed: ${(error as Error).message}`);
    }
    for (const r of results ?? [])
      if (r.status === 'Success') options.logger?.info({ migration: r.migrationName }, 'migration applied');
    const checkpointer = sqliteFile
      ? new WalCheckpointer(sqliteFile.sqlite, sqliteFile.file, options.logger)
      : null;
    return new Store(db, kind, options.logger, checkpointer);
  }

  /** Queues a write after every earlier one; failures are logged and counted. */
  write(what: string, fn: (db: Kysely<Database>) => Promise<unknown>): Promise<void> {
    this.queue = this.queue.then(() =>
      fn(this.db).then(
        () => undefined,
        (err: unknown) => {
          this.writeErrors++;
          this.logger?.error({ err, what }, 'store write failed');
        },
      ),
    );
    return this.queue;
  }

  /** Prometheus exposition of {@link writeErrors} (`/metrics`). */
  metricsText(): string {
    return `# HELP callstream_store_write_errors_total record and outbox writes that failed (each logged)\n# TYPE callstream_store_write_errors_total counter\ncallstream_store_write_errors_total ${this.writeErrors}\n`;
  }

  /** Resolves when every queued write has been attempted. */
  flush(): Promise<void> {
    return this.queue;
  }

  insertCall(row: Insertable<CallsTable>): Promise<void> {
    return this.write('insert call', (db) => db.insertInto('calls').values(row).execute());
  }

  updateCall(callUuid: string, patch: Updateable<CallsTable>): Promise<void> {
    return this.write('update call', (db) =>
      db.updateTable('calls').set(patch).where('call_uuid', '=', callUuid).execute(),
    );
  }

  insertStream(row: Insertable<StreamsTable>): Promise<void> {
    return this.write('insert stream', (db) => db.insertInto('streams').values(row).execute());
  }

  updateStream(streamId: string, patch: Updateable<StreamsTable>): Promise<void> {
    return this.write('update stream', (db) =>
      db.updateTable('streams').set(patch).where('stream_id', '=', streamId).execute(),
    );
  }

  /**
   * Persists many streams' last-media times in one transaction (the progress timer: one write per
   * interval for all live streams instead of one statement each; `[streamId, epoch ms]`).
   */
  updateLastMedia(entries: Array<[string, number]>): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    // One UPDATE … CASE per 300 streams: a single statement keeps the (synchronous) SQLite write
    // short, so it never delays the media clock.
    return this.write('update last media', async (db) => {
      for (let i = 0; i < entries.length; i += 300) {
        const chunk = entries.slice(i, i + 300);
        await db
          .updateTable('streams')
          .set({
            last_media_ms: sql<number>`CASE stream_id ${sql.join(
              chunk.map(([id, ms]) => sql`WHEN ${id} THEN CAST(${ms} AS BIGINT)`),
              sql` `,
            )} END`,
          })
          .where(
            'stream_id',
            'in',
            chunk.map(([id]) => id),
          )
          .execute();
      }
    });
  }

  async getCall(callUuid: string): Promise<CallRow | undefined> {
    const row = await this.db
      .selectFrom('calls')
      .selectAll()
      .where('call_uuid', '=', callUuid)
      .executeTakeFirst();
    return row && normalizeCall(row);
  }

  async getStream(callUuid: string, streamId: string): Promise<StreamRow | undefined> {
    const row = await this.db
      .selectFrom('streams')
      .selectAll()
      .where('call_uuid', '=', callUuid)
      .where('stream_id', '=', streamId)
      .executeTakeFirst();
    return row && normalizeStream(row);
  }

  /** Streams of a call, oldest first, with the total count. */
  async listStreams(
    callUuid: string,
    limit: number,
    offset: number,
  ): Promise<{ rows: StreamRow[]; total: number }> {
    const rows = await this.db
      .selectFrom('streams')
      .selectAll()
      .where('call_uuid', '=', callUuid)
      .orderBy('created_us')
      .orderBy('stream_id')
      .limit(limit)
      .offset(offset)
      .execute();
    const c = await this.db
      .selectFrom('streams')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('call_uuid', '=', callUuid)
      .executeTakeFirstOrThrow();
    return { rows: rows.map(normalizeStream), total: Number(c.n) }; // count(*) is a string on pg
  }

  // ----- outbox

  /**
   * Applies a batch of outbox changes in one transaction, in this order: new deliveries inserted
   * (status `pending`), delivered ones deleted (nothing is left to resume or inspect), failed ones
   * kept with status `failed`, their attempts and last error. One statement per up to
   * {@link OUTBOX_CHUNK} rows of a kind, so a busy second costs a few statements, not two per callback.
   */
  writeOutbox(batch: OutboxBatch): Promise<void> {
    const { inserts, delivered, failed } = batch;
    if (inserts.length + delivered.length + failed.length === 0) return Promise.resolve();
    return this.write('outbox batch', (db) =>
      db.transaction().execute(async (trx) => {
        for (let i = 0; i < inserts.length; i += OUTBOX_CHUNK)
          await trx
            .insertInto('outbox')
            .values(inserts.slice(i, i + OUTBOX_CHUNK))
            .execute();
        for (let i = 0; i < delivered.length; i += OUTBOX_CHUNK)
          await trx
            .deleteFrom('outbox')
            .where('delivery_id', 'in', delivered.slice(i, i + OUTBOX_CHUNK))
            .execute();
        for (const f of failed)
          await trx
            .updateTable('outbox')
            .set({ status: 'failed', attempts: f.attempts, last_error: f.lastError })
            .where('delivery_id', '=', f.deliveryId)
            .execute();
      }),
    );
  }

  async pendingOutbox(): Promise<OutboxRow[]> {
    const rows = await this.db
      .selectFrom('outbox')
      .selectAll()
      .where('status', '=', 'pending')
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({
      ...r,
      seq: Number(r.seq),
      attempts: Number(r.attempts),
      created_ms: Number(r.created_ms),
    }));
  }

  /**
   * After an unclean stop: closes streams and calls that were live. A stream ends at its last
   * media actually sent (else its first, else its creation), is billed, and gets status `stopped`
   * with reason `call_hangup` (the process took its call down); a call ends at the latest of its
   * streams' ends (else its answer time).
   */
  async recover(
    bill: (
      startMs: number | null,
      endMs: number,
    ) => { billDuration: number; roundedBillDuration: number; billedAmount: string },
  ): Promise<RecoveryReport> {
    const live = await this.db
      .selectFrom('streams')
      .selectAll()
      .where('status', 'in', ['initiated', 'in-progress'])
      .execute();
    const callEnds = new Map<string, number>();
    for (const raw of live) {
      const s = normalizeStream(raw);
      const end = s.last_media_ms ?? s.start_ms ?? Math.floor(s.created_us / 1000);
      const b = bill(s.start_ms, end);
      await this.updateStream(s.stream_id, {
        status: 'stopped',
        end_ms: end,
        end_reason: 'call_hangup',
        bill_duration: b.billDuration,
        rounded_bill_duration: b.roundedBillDuration,
        billed_amount: b.billedAmount,
      });
      callEnds.set(s.call_uuid, Math.max(callEnds.get(s.call_uuid) ?? 0, end));
    }
    const calls = await this.db.selectFrom('calls').selectAll().where('status', '!=', 'completed').execute();
    for (const raw of calls) {
      const c = normalizeCall(raw);
      const end = Math.max(callEnds.get(c.call_uuid) ?? 0, c.answered_ms ?? c.created_ms);
      await this.updateCall(c.call_uuid, {
        status: 'completed',
        ended_ms: end,
        hangup_cause: 'SERVER_RESTART',
      });
    }
    await this.flush();
    const pending = await this.pendingOutbox();
    return { streams: live.length, calls: calls.length, pendingCallbacks: pending.length };
  }

  /** Waits for queued writes, runs a last WAL checkpoint (SQLite), then closes the connection. */
  async close(): Promise<void> {
    await this.flush();
    await this.walCheckpointer?.close();
    await this.db.destroy();
  }
}

function normalizeStream(r: StreamRow): StreamRow {
  return {
    ...r,
    bidirectional: Number(r.bidirectional),
    stream_timeout: Number(r.stream_timeout),
    keep_call_alive: Number(r.keep_call_alive),
    noise_cancellation: Number(r.noise_cancellation),
    noise_cancellation_level: Number(r.noise_cancellation_level),
    created_us: Number(r.created_us),
    start_ms: toNumber(r.start_ms),
    last_media_ms: toNumber(r.last_media_ms),
    end_ms: toNumber(r.end_ms),
    bill_duration: Number(r.bill_duration),
    rounded_bill_duration: Number(r.rounded_bill_duration),
  };
}

function normalizeCall(r: CallRow): CallRow {
  return {
    ...r,
    created_ms: Number(r.created_ms),
    answered_ms: toNumber(r.answered_ms),
    ended_ms: toNumber(r.ended_ms),
  };
}

/** Most distinct SQL texts kept prepared (the store issues a few dozen query shapes). */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Wraps a better-sqlite3 database so that Kysely's SQLite driver, which calls `prepare` for every
 * query, reuses one prepared statement per SQL text (parameters are bound per run). Measured in the
 * 200-call benchmark: `prepare` was ~2 % of the server's CPU. The cache is bounded: past
 * {@link STATEMENT_CACHE_SIZE} texts it starts over.
 */
function cachingStatements(sqlite: SqliteDatabase.Database): KyselySqliteDatabase {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let stmt = statements.get(sql);
      if (!stmt) {
        if (statements.size >= STATEMENT_CACHE_SIZE) statements.clear();
        stmt = sqlite.prepare(sql);
        statements.set(sql, stmt);
      }
      return stmt;
    },
  };
}
