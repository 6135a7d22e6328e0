/**
 * Durability (issue 4): a server with live streams is killed with SIGKILL; after a restart the
 * records are closed at their last media and every callback that was due is delivered exactly once
 * per delivery id to a receiver that was down during the crash. And a graceful SIGTERM drain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CallbackReceiver, TestWsApp } from '../src/testing/index.js';
import { spawnServer } from './server-process.js';
import { testDatabaseUrl, until } from './helpers.js';

const AUTH_ID = 'MACRASHTEST000000001';
const TOKEN = 'crash-test-token';
const auth = `Basic ${Buffer.from(`${AUTH_ID}:${TOKEN}`).toString('base64')}`;

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}/v1/Account/${AUTH_ID}${path}`, {
    method,
    headers: { authorization: auth, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function configFile(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-crash-'));
  const databaseUrl = await testDatabaseUrl();
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      authId: AUTH_ID,
      authToken: TOKEN,
      http: { port: 0 },
      store: { sqliteFile: join(dir, 'db.sqlite'), ...(databaseUrl ? { databaseUrl } : {}) },
      sip: { enabled: false },
      callbacks: { retryDelaysMs: [1000, 2000, 4000] },
      log: { level: 'warn' },
    }),
  );
  return file;
}

test('SIGKILL with live streams: records closed at their last media, pending callbacks delivered once after restart', async () => {
  const file = await configFile();
  const app = await TestWsApp.start();
  const receiverPort = await freePort(); // the receiver is down until after the crash
  const first = await spawnServer(file);
  const call = await api(first.baseUrl, 'POST', '/SimulatedCall/', {});
  const callUuid = call.body.call_uuid as string;
  const streams: string[] = [];
  for (const path of ['/one', '/two']) {
    const r = await api(first.baseUrl, 'POST', `/Call/${callUuid}/Stream/`, {
      service_url: app.url(path),
      status_callback_url: `http://127.0.0.1:${receiverPort}/cb`,
    });
    assert.equal(r.status, 202);
    streams.push(r.body.stream_id);
  }
  await app.waitFor(
    () => app.connections.length === 2 && app.connections.every((c) => c.messages.length > 60),
    'media flowing',
  );
  await new Promise((r) => setTimeout(r, 1200)); // a progress write has happened
  const killedAt = Date.now();
  first.child.kill('SIGKILL');
  assert.equal(await first.exited, 'SIGKILL');

  const receiver = await CallbackReceiver.startOn(receiverPort);
  const second = await spawnServer(file);
  try {
    for (const id of streams) {
      const rec = await api(second.baseUrl, 'GET', `/Call/${callUuid}/Stream/${id}/`);
      assert.equal(rec.status, 200);
      assert.equal(rec.body.status, 'stopped');
      const start = Date.parse(rec.body.start_time.replace(' ', 'T'));
      const end = Date.parse(rec.body.end_time.replace(' ', 'T'));
      assert.ok(end <= killedAt && end >= killedAt - 2500, `end ${end} near the kill at ${killedAt}`);
      assert.ok(
        rec.body.bill_duration >= 1 && rec.body.bill_duration <= Math.ceil((end - start) / 1000) + 1,
        `bill ${rec.body.bill_duration}`,
      );
      assert.equal(rec.body.rounded_bill_duration, 60);
      assert.equal(rec.body.billed_amount, '0.00300');
    }
    assert.equal((await api(second.baseUrl, 'GET', '/Call/?status=live')).body.calls.length, 0);
    // Each stream's StartStream was due while the receiver was down: now delivered, once per id.
    await until(() => receiver.received.length >= 2, 'resumed callbacks', 10000);
    await new Promise((r) => setTimeout(r, 1500)); // no duplicates trickle in
    const ids = receiver.received.map((r) => String(r.headers['x-callstream-delivery-id']));
    assert.equal(new Set(ids).size, ids.length, 'each delivery id once');
    assert.deepEqual(receiver.received.map((r) => r.params.Event).sort(), ['StartStream', 'StartStream']);
    assert.deepEqual(receiver.received.map((r) => r.params.StreamID).sort(), [...streams].sort());
  } finally {
    second.child.kill('SIGTERM');
    await second.exited;
    await receiver.close();
    await app.close();
  }
});

test('SIGTERM drains: streams get stop and close 1001, the process exits 0, records are final', async () => {
  const file = await configFile();
  const app = await TestWsApp.start();
  const server = await spawnServer(file);
  const call = await api(server.baseUrl, 'POST', '/SimulatedCall/', {});
  const r = await api(server.baseUrl, 'POST', `/Call/${call.body.call_uuid}/Stream/`, {
    service_url: app.url('/t'),
  });
  await app.waitFor(() => app.connections.length === 1 && app.last.messages.length > 10, 'media');
  let closeCode = 0;
  app.last.socket.once('close', (code) => (closeCode = code));
  server.child.kill('SIGTERM');
  assert.equal(await server.exited, 0);
  await app.waitFor(() => app.last.closed, 'socket closed');
  assert.equal(app.last.messages.at(-1)!.event, 'stop');
  assert.equal(app.last.messages.at(-1)!.reason, 'call_hangup');
  assert.equal(closeCode, 1001);
  const again = await spawnServer(file);
  try {
    const rec = await api(again.baseUrl, 'GET', `/Call/${call.body.call_uuid}/Stream/${r.body.stream_id}/`);
    assert.equal(rec.body.status, 'stopped');
    assert.notEqual(rec.body.end_time, null);
  } finally {
    again.child.kill('SIGTERM');
    await again.exited;
    await app.close();
  }
});
