import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Freezer, parseFreeze } from '../../../bench/freeze.js';

/** The scheduler state letter of `pid` (`/proc/<pid>/stat` field 3): R, S, T (stopped)… */
function state(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

test('bench --freeze: DUTY/MS parsed, bad forms rejected with the expected form named', () => {
  assert.deepEqual(parseFreeze('0.2/80', 7), { duty: 0.2, maxMs: 80, seed: 7 });
  assert.deepEqual(parseFreeze('.5/5'), { duty: 0.5, maxMs: 5, seed: 1 });
  for (const bad of ['0.2', '1/80', '0/80', '0.2/4', '0.2/80ms', '20%/80', '0.2/9999'])
    assert.throws(() => parseFreeze(bad), /--freeze must be DUTY\/MS/, bad);
});

test('bench --freeze: a target process is really stopped about DUTY of the time, and thawed at stop', async () => {
  const child = spawn('sleep', ['30']);
  await new Promise((r) => child.once('spawn', r));
  const pid = child.pid!;
  try {
    const freezer = new Freezer({ duty: 0.5, maxMs: 40, seed: 3 }, { sleeper: pid });
    freezer.start();
    let stopped = 0;
    let samples = 0;
    const until = performance.now() + 800;
    while (performance.now() < until) {
      if (state(pid) === 'T') stopped++;
      samples++;
      await new Promise((r) => setTimeout(r, 2));
    }
    freezer.stop();
    const share = stopped / samples;
    assert.ok(share > 0.15 && share < 0.85, `stopped in ${stopped} of ${samples} samples`);
    const done = freezer.stats.sleeper!;
    assert.ok(done.freezes >= 3, `${done.freezes} freezes`);
    assert.ok(done.maxMs >= 5 && done.frozenMs > 0, JSON.stringify(done));
    assert.notEqual(state(pid), 'T', 'thawed after stop()');
  } finally {
    child.kill('SIGKILL');
  }
});

test('bench socket queues: bytes a process has not read yet are found in the kernel, by socket inode', async () => {
  const { createServer, connect } = await import('node:net');
  const { recvQueues } = await import('../../../bench/socket-queues.js');
  const server = createServer({ pauseOnConnect: true }, () => {}); // accepted, never read
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = connect(port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const before = recvQueues({ self: process.pid }).self!.tcpBytes;
  client.write(Buffer.alloc(5000, 1));
  let after = before;
  for (let i = 0; i < 100 && after - before < 5000; i++) {
    await new Promise((r) => setTimeout(r, 10));
    after = recvQueues({ self: process.pid }).self!.tcpBytes;
  }
  client.destroy();
  server.close();
  assert.equal(after - before, 5000, 'the 5000 unread bytes');
  assert.deepEqual(recvQueues({ gone: 2 ** 22 + 1 }).gone, { tcpBytes: 0, udpBytes: 0 }, 'no such process');
});
