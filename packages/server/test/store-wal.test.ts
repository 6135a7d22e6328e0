/**
 * SQLite WAL checkpoints off the media thread (store/wal-checkpointer.ts): the server's connection
 * never checkpoints; a worker thread does, and what it copies is in the database file; if the worker
 * cannot run, the connection checkpoints on its own again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../src/store/store.js';
import { WalCheckpointer } from '../src/store/wal-checkpointer.js';
import { until } from './helpers.js';

function walDb(dir: string) {
  const file = join(dir, 'wal.db');
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  return { file, sqlite };
}

test('WAL checkpoints: the connection never checkpoints itself; the worker does, and the WAL restarts small', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'callstream-wal-'));
  const { file, sqlite } = walDb(dir);
  const cp = new WalCheckpointer(sqlite, file, undefined, 20);
  try {
    assert.equal(sqlite.pragma('wal_autocheckpoint', { simple: true }), 0);
    const insert = sqlite.prepare('INSERT INTO t (v) VALUES (?)');
    // 3000 one-row commits of ~1 KiB: ~3000 WAL frames, three times SQLite's automatic mark.
    for (let i = 0; i < 3000; i++) insert.run('x'.repeat(1000));
    await until(() => cp.stats.pagesCheckpointed >= 1000, 'the worker checkpointed the WAL', 10_000);
    assert.equal(cp.stats.errors, 0);
    // After a complete checkpoint the next commits write from the WAL's start again.
    const walBefore = statSync(`${file}-wal`).size;
    await until(() => {
      insert.run('y');
      return cp.stats.checkpoints >= 3;
    }, 'more checkpoints');
    for (let i = 0; i < 10; i++) insert.run('z');
    assert.ok(statSync(`${file}-wal`).size <= walBefore, 'the WAL did not grow past its high mark');
    await cp.close();
    // What was checkpointed is in the database file itself: readable with the WAL gone.
    sqlite.close();
    rmSync(`${file}-wal`, { force: true });
    rmSync(`${file}-shm`, { force: true });
    const reader = new Database(file, { readonly: true });
    const n = reader.prepare('SELECT count(*) AS n FROM t').get() as { n: number };
    reader.close();
    assert.ok(n.n >= 3000, `rows in the database file: ${n.n}`);
  } finally {
    await cp.close();
    if (sqlite.open) sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('WAL checkpoints: a worker that cannot run hands checkpoints back to the connection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'callstream-wal-'));
  const { sqlite } = walDb(dir);
  const cp = new WalCheckpointer(sqlite, join(dir, 'missing.db'), undefined, 20); // the worker cannot open it
  try {
    assert.equal(sqlite.pragma('wal_autocheckpoint', { simple: true }), 0);
    await until(
      () => sqlite.pragma('wal_autocheckpoint', { simple: true }) === 1000,
      'automatic checkpoints back on',
    );
    assert.equal(cp.stats.checkpoints, 0);
  } finally {
    await cp.close();
    sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('store: a SQLite file store checkpoints on the worker and stops it on close; :memory: has none', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'callstream-wal-'));
  try {
    const store = await Store.open({ sqliteFile: join(dir, 'callstream.db') });
    assert.ok(store.walCheckpointer, 'file store has a checkpointer');
    await store.insertCall({
      call_uuid: 'c1',
      direction: 'inbound',
      from_number: '1',
      to_number: '2',
      caller_name: '',
      status: 'in-progress',
      created_ms: 1,
      answered_ms: null,
      ended_ms: null,
      hangup_cause: null,
    });
    await until(() => store.walCheckpointer!.stats.checkpoints > 0, 'a checkpoint ran', 10_000);
    await store.close();
    const memory = await Store.open({ sqliteFile: ':memory:' });
    assert.equal(memory.walCheckpointer, null);
    await memory.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
