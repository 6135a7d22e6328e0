/**
 * Status callbacks (protocol.md §4): retries on a fake clock, ordering, GET encoding, signatures,
 * and the stream-end callbacks (streamTimeout, app close).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpCallbackSender } from '../src/index.js';
import { CallbackReceiver, FakeClock, TestWsApp } from '../src/testing/index.js';
import { assertSignedCallback, harness, until } from './helpers.js';

const TOKEN = 'token-for-tests';

function sender(clock: FakeClock) {
  return new HttpCallbackSender({
    clock,
    authToken: TOKEN,
    userAgent: 'callstream/test',
    timeoutMs: 5000,
    retryDelaysMs: [1000, 2000, 4000],
  });
}

test('5xx is retried after 1, 2, 4 s with fresh nonces and unchanged parameters; 4xx is final', async () => {
  const clock = new FakeClock();
  const receiver = await CallbackReceiver.start();
  receiver.status = (n) => (n < 3 ? 503 : 200);
  const s = sender(clock);
  let delivered = 0;
  s.send({
    key: 'a',
    url: receiver.url(),
    method: 'POST',
    params: { Event: 'StartStream', Timestamp: 'T' },
    onDelivered: () => delivered++,
  });
  await until(
    () => receiver.received.length === 1 && clock.nextTimerIn() === 1000,
    'first attempt, retry scheduled',
  );
  clock.advance(999);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(receiver.received.length, 1, 'not before 1 s');
  clock.advance(1);
  await until(
    () => receiver.received.length === 2 && clock.nextTimerIn() === 2000,
    'second attempt, retry scheduled',
  );
  clock.advance(2000);
  await until(() => receiver.received.length === 3 && delivered === 1, 'third attempt delivered');
  const nonces = new Set(receiver.received.map((r) => r.headers['x-plivo-signature-v3-nonce']));
  assert.equal(nonces.size, 3);
  assert.ok(receiver.received.every((r) => r.body === 'Event=StartStream&Timestamp=T'));
  for (const r of receiver.received) assertSignedCallback(r, TOKEN);

  receiver.status = 404;
  let failure = '';
  s.send({
    key: 'b',
    url: receiver.url(),
    method: 'POST',
    params: { Event: 'X' },
    onFailure: (c) => (failure = c),
  });
  await until(() => failure !== '', 'final failure');
  assert.equal(receiver.received.length, 4, '404 is not retried');
  assert.match(failure, /HTTP 404/);
  s.close();
  await receiver.close();
});

test('deliveries reuse one keep-alive connection; a refused connection is a retryable network error', async () => {
  const clock = new FakeClock();
  const receiver = await CallbackReceiver.start();
  const s = sender(clock);
  for (let i = 0; i < 20; i++)
    s.send({ key: 'k', url: receiver.url(), method: 'POST', params: { N: String(i) } });
  await s.idle();
  assert.deepEqual(
    receiver.received.map((r) => r.params.N),
    Array.from({ length: 20 }, (_, i) => String(i)),
  );
  // undici hands the next request to a second connection when the last one's body has ended but the
  // connection is not yet marked free; what matters is reuse, not one connection per callback.
  assert.ok(receiver.connections <= 2, `20 sequential callbacks used ${receiver.connections} connections`);
  assert.equal(s.stats.delivered, 20);

  const url = receiver.url();
  await receiver.close(); // nothing listens on that port any more
  let failure = '';
  s.send({ key: 'gone', url, method: 'POST', params: { N: 'x' }, onFailure: (c) => (failure = c) });
  await until(() => clock.nextTimerIn() === 1000, 'refused, retry scheduled');
  clock.advance(1000);
  await until(() => clock.nextTimerIn() === 2000, 'second refusal, retry scheduled');
  clock.advance(2000);
  await until(() => clock.nextTimerIn() === 4000, 'third refusal, retry scheduled');
  clock.advance(4000);
  await until(() => failure !== '', 'given up after 3 retries');
  assert.match(failure, /^network error: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  assert.equal(s.stats.attempts, 24);
  s.close();
});

test('callbacks of one stream are delivered in order even while one retries; GET puts parameters in the query, signed', async () => {
  const clock = new FakeClock();
  const receiver = await CallbackReceiver.start();
  receiver.status = (n) => (n === 1 ? 500 : 200);
  const s = sender(clock);
  s.send({
    key: 's1',
    url: receiver.url('/cb?keep=1'),
    method: 'GET',
    params: { Event: 'StartStream', N: '1' },
  });
  s.send({
    key: 's1',
    url: receiver.url('/cb?keep=1'),
    method: 'GET',
    params: { Event: 'PlayedStream', N: '2' },
  });
  await until(
    () => receiver.received.length === 1 && clock.nextTimerIn() === 1000,
    'first attempt, retry scheduled',
  );
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(receiver.received.length, 1, 'the second waits for the first');
  clock.advance(1000);
  await until(() => receiver.received.length === 3, 'retry then next');
  assert.deepEqual(
    receiver.received.map((r) => r.params.N),
    ['1', '1', '2'],
  );
  const r = receiver.received[2]!;
  assert.equal(r.method, 'GET');
  assert.equal(r.params.keep, '1');
  assert.equal(r.params.Event, 'PlayedStream');
  assertSignedCallback(r, TOKEN);
  await s.idle();
  s.close();
  await receiver.close();
});

test('streamTimeout stops the stream (WS stop, StopStream stream_timeout); the call goes on', async () => {
  const app = await TestWsApp.start();
  const receiver = await CallbackReceiver.start();
  const h = harness();
  const stream = h.startStream(app.url(), {
    streamTimeout: '2',
    statusCallbackUrl: receiver.url(),
    contentType: 'audio/x-mulaw;rate=8000',
  });
  await app.waitForStarts();
  const frame = new Uint8Array(160).fill(0x42);
  h.leg.frame(frame, h.clock.now()); // first media: the timeout starts now
  await until(() => stream.firstMediaAt !== null, 'first media');
  for (let i = 0; i < 99; i++) {
    h.clock.advance(20);
    h.leg.frame(frame, h.clock.now());
  }
  assert.equal(stream.ended, false);
  h.clock.advance(20);
  assert.equal(stream.endReason, 'stream_timeout');
  assert.equal(h.call.ended, false);
  await app.waitFor(() => app.last.messages.at(-1)?.event === 'stop' && app.last.closed, 'stop + close');
  assert.equal(app.last.messages.at(-1)!.reason, 'stream_timeout');
  await until(() => receiver.received.length === 2, 'callbacks');
  assert.deepEqual(receiver.events(), ['StartStream', 'StopStream']);
  assert.equal(receiver.received[1]!.params.Reason, 'stream_timeout');
  assert.equal(receiver.received[1]!.params.streamTimeout, '2');
  h.call.hangup();
  await receiver.close();
  await app.close();
});

test('app closes cleanly: StopStream remote_closed, no WS stop; keepCallAlive waiters are released', async () => {
  const app = await TestWsApp.start();
  const receiver = await CallbackReceiver.start();
  const h = harness();
  const stream = h.startStream(app.url(), { statusCallbackUrl: receiver.url(), keepCallAlive: 'true' });
  await app.waitForStarts();
  app.last.socket.close(1000, 'bye');
  assert.equal(await stream.done, 'remote_closed');
  assert.equal(stream.status, 'stopped');
  await until(() => receiver.received.length === 1, 'callback');
  assert.equal(receiver.received[0]!.params.Event, 'StopStream');
  assert.equal(receiver.received[0]!.params.Reason, 'remote_closed');
  assert.equal(receiver.received[0]!.params.keepCallAlive, 'true');
  assert.ok(!app.last.messages.some((m) => m.event === 'stop'));
  h.call.hangup();
  await receiver.close();
  await app.close();
});

test('hangup cascades: every stream of the call stops with call_hangup and no timer is left behind', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const a = h.startStream(app.url('/a'), { bidirectional: 'true' });
  const b = h.startStream(app.url('/b'), { audioTrack: 'both' });
  const dup = h.startStream(app.url('/a'));
  assert.equal(dup.status, 'dropped', 'same URL as an active stream: rejected');
  assert.ok(dup.debugLog.list().some((e) => e.code === 'invalid_parameters'));
  await app.waitFor(
    () => app.connections.length === 2 && app.connections.every((c) => c.messages.length === 1),
    'starts',
  );
  h.call.hangup();
  assert.deepEqual([a.endReason, b.endReason], ['call_hangup', 'call_hangup']);
  await app.waitFor(() => app.connections.every((c) => c.closed), 'sockets closed');
  for (const c of app.connections) {
    const stop = c.messages.at(-1)!;
    assert.equal(stop.event, 'stop');
    assert.deepEqual(stop.stop.tracks, c.request.url === '/b' ? ['inbound', 'outbound'] : ['inbound']);
  }
  await until(() => h.clock.pendingTimers === 0, 'every timer of the call released');
  await app.close();
});

test('a rejected <Stream> still gets a record and DroppedStream invalid_parameters with the cause', async () => {
  const receiver = await CallbackReceiver.start();
  const h = harness();
  const stream = h.startStream('wss://app.example.com/ws', {
    contentType: 'audio/ogg',
    statusCallbackUrl: receiver.url(),
  });
  assert.equal(stream.status, 'dropped');
  assert.equal(stream.endReason, 'invalid_parameters');
  await until(() => receiver.received.length === 1, 'DroppedStream');
  const p = receiver.received[0]!.params;
  assert.equal(p.Event, 'DroppedStream');
  assert.equal(p.Reason, 'invalid_parameters');
  assert.match(p.Error!, /^Invalid stream parameters: contentType must be one of/);
  assert.ok(stream.debugLog.list().some((e) => e.code === 'invalid_parameters'));
  h.call.hangup();
  await receiver.close();
});

test('closing the sender ends retry waits: pending callbacks fail with "sender closed" and idle() resolves', async () => {
  const clock = new FakeClock();
  const receiver = await CallbackReceiver.start();
  receiver.status = 503;
  const s = sender(clock);
  const failures: string[] = [];
  s.send({
    key: 'k',
    url: receiver.url(),
    method: 'POST',
    params: { N: '1' },
    onFailure: (c) => failures.push(c),
  });
  s.send({
    key: 'k',
    url: receiver.url(),
    method: 'POST',
    params: { N: '2' },
    onFailure: (c) => failures.push(c),
  });
  await until(() => receiver.received.length === 1 && clock.nextTimerIn() === 1000, 'waiting to retry');
  s.close();
  await s.idle();
  assert.deepEqual(failures, ['sender closed', 'sender closed']);
  assert.equal(receiver.received.length, 1);
  await receiver.close();
});
