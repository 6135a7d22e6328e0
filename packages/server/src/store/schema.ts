/**
 * Database schema (kysely types) and versioned migrations. Times are integer epoch milliseconds;
 * the API formats them (protocol.md §2.3).
 */
import type { Kysely, Migration, MigrationProvider } from 'kysely';

/** `calls` table. */
export interface CallsTable {
  call_uuid: string;
  direction: string;
  from_number: string;
  to_number: string;
  caller_name: string;
  /** `in-progress` while live, `completed` after. */
  status: string;
  created_ms: number;
  answered_ms: number | null;
  ended_ms: number | null;
  hangup_cause: string | null;
}

/** `streams` table: every field of the stream object (§2.3) plus what the engine needs. */
export interface StreamsTable {
  stream_id: string;
  call_uuid: string;
  service_url: string;
  bidirectional: number;
  audio_track: string;
  content_type: string;
  status: string;
  status_callback_url: string;
  status_callback_method: string;
  extra_headers: string;
  stream_timeout: number;
  keep_call_alive: number;
  noise_cancellation: number;
  noise_cancellation_level: number;
  /** Epoch microseconds (created_at has microseconds). */
  created_us: number;
  start_ms: number | null;
  last_media_ms: number | null;
  end_ms: number | null;
  end_reason: string | null;
  bill_duration: number;
  rounded_bill_duration: number;
  billed_amount: string;
  /** JSON array of debug-log entries (§3.8). */
  debug_log: string;
}

/** `outbox` table: callbacks persisted before their first attempt (§4.3). */
export interface OutboxTable {
  delivery_id: string;
  /** Enqueue order (assigned by the process: ms × 1000 + counter). */
  seq: number;
  ordering_key: string;
  url: string;
  method: string;
  params: string;
  headers: string;
  status: string;
  attempts: number;
  created_ms: number;
  last_error: string | null;
}

/** The database. */
export interface Database {
  calls: CallsTable;
  streams: StreamsTable;
  outbox: OutboxTable;
}

const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('calls')
        .addColumn('call_uuid', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('direction', 'varchar(16)', (c) => c.notNull())
        .addColumn('from_number', 'varchar(256)', (c) => c.notNull())
        .addColumn('to_number', 'varchar(256)', (c) => c.notNull())
        .addColumn('caller_name', 'varchar(256)', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('created_ms', 'bigint', (c) => c.notNull())
        .addColumn('answered_ms', 'bigint')
        .addColumn('ended_ms', 'bigint')
        .addColumn('hangup_cause', 'varchar(64)')
        .execute();
      await db.schema
        .createTable('streams')
        .addColumn('stream_id', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('call_uuid', 'varchar(36)', (c) => c.notNull())
        .addColumn('service_url', 'text', (c) => c.notNull())
        .addColumn('bidirectional', 'integer', (c) => c.notNull())
        .addColumn('audio_track', 'varchar(16)', (c) => c.notNull())
        .addColumn('content_type', 'varchar(32)', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('status_callback_url', 'text', (c) => c.notNull())
        .addColumn('status_callback_method', 'varchar(8)', (c) => c.notNull())
        .addColumn('extra_headers', 'text', (c) => c.notNull())
        .addColumn('stream_timeout', 'integer', (c) => c.notNull())
        .addColumn('keep_call_alive', 'integer', (c) => c.notNull())
        .addColumn('noise_cancellation', 'integer', (c) => c.notNull())
        .addColumn('noise_cancellation_level', 'integer', (c) => c.notNull())
        .addColumn('created_us', 'bigint', (c) => c.notNull())
        .addColumn('start_ms', 'bigint')
        .addColumn('last_media_ms', 'bigint')
        .addColumn('end_ms', 'bigint')
        .addColumn('end_reason', 'varchar(32)')
        .addColumn('bill_duration', 'integer', (c) => c.notNull())
        .addColumn('rounded_bill_duration', 'integer', (c) => c.notNull())
        .addColumn('billed_amount', 'varchar(32)', (c) => c.notNull())
        .addColumn('debug_log', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('streams_call')
        .on('streams')
        .columns(['call_uuid', 'created_us'])
        .execute();
      await db.schema
        .createTable('outbox')
        .addColumn('delivery_id', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('ordering_key', 'varchar(64)', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('method', 'varchar(8)', (c) => c.notNull())
        .addColumn('params', 'text', (c) => c.notNull())
        .addColumn('headers', 'text', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('created_ms', 'bigint', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .execute();
      await db.schema.createIndex('outbox_pending').on('outbox').columns(['status', 'seq']).execute();
    },
  },
};

/** Migrations in code, applied in name order at start-up. */
export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
