// SQLite WAL checkpoints on their own thread (see wal-checkpointer.ts). Own connection to the same
// file; every `intervalMs` a PASSIVE checkpoint (never waits for the server's readers or writers).
// Messages out: { t: 'checkpoint', log, checkpointed, busy, ms } | { t: 'error', message }.
// Message in: 'close' → one last checkpoint, close the connection, exit.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const db = new Database(workerData.file, { fileMustExist: true });
const checkpoint = () => {
  const t0 = performance.now();
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ t: 'checkpoint', ...r, ms: performance.now() - t0 });
  } catch (e) {
    parentPort.postMessage({ t: 'error', message: e instanceof Error ? e.message : String(e) });
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
