/**
 * Failures (protocol.md §3.1, §3.7, §4): unreachable app, dropped connection, slow consumer,
 * garbage from the app. Real sockets, fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { appMessages } from '@callstream/protocol';
import { CallbackReceiver, TestWsApp } from '../src/testing/index.js';
import { harness, until, plivo, assertSignedCallback } from './helpers.js';

const TOKEN = 'callstream-dev-token';

test('app not listening: exactly 3 attempts (250 ms, 1 s apart), then DroppedStream with the documented Error, signed', async () => {
  let connections = 0;
  const sockets: Socket[] = [];
  const refuser = createServer((s) => {
    connections++;
    sockets.push(s);
    s.destroy();
  });
  await new Promise<void>((r) => refuser.listen(0, '127.0.0.1', r));
  const port = (refuser.address() as AddressInfo).port;
  const receiver = await CallbackReceiver.start();
  const h = harness();
  const stream = h.startStream(`ws://127.0.0.1:${port}/ws?x=1`, {
    statusCallbackUrl: receiver.url('/status?tag=a'),
  });
  await until(() => connections === 1 && stream.debugLog.count('connect_failed') === 1, 'first attempt');
  h.clock.advance(249);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(connections, 1, 'no retry before 250 ms');
  h.clock.advance(1);
  await until(() => connections === 2 && stream.debugLog.count('connect_failed') === 2, 'second attempt');
  h.clock.advance(1000);
  await until(() => stream.ended, 'third attempt and drop');
  assert.equal(connections, 3);
  await until(() => receiver.received.length === 1, 'DroppedStream callback');
  h.clock.advance(60_000);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(connections, 3, 'no fourth attempt');
  assert.equal(stream.status, 'dropped');
  assert.equal(stream.endReason, 'connect_failed');

  await until(() => receiver.received.length === 1, 'DroppedStream callback');
  const cb = receiver.received[0]!;
  assert.equal(cb.params.Event, 'DroppedStream');
  assert.equal(cb.params.Error, 'Could not establish connection with the remote service');
  assert.equal(cb.params.Reason, 'connect_failed');
  assert.equal(cb.params.StreamID, stream.streamId);
  assert.equal(cb.params.CallUUID, h.call.info.callId);
  assert.equal(cb.params.From, '15551230000');
  assert.equal(cb.params.ServiceURL, `ws://127.0.0.1:${port}/ws?x=1`);
  assert.equal(cb.params.contentType, 'audio/x-l16;rate=8000');
  assert.match(cb.params.Timestamp!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(cb.headers['content-type'], 'application/x-www-form-urlencoded; charset=utf-8');
  assert.match(String(cb.headers['user-agent']), /^callstream\//);
  assertSignedCallback(cb, TOKEN);
  h.call.hangup();
  await receiver.close();
  refuser.close();
});

test('upgrade request: signed (official validator), extraHeaders as headers, query kept, no deflate offer', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  h.startStream(app.url('/ws?session=42&b=2'), { extraHeaders: 'userId=12345,sessionId=abc-123,Host=evil' });
  await app.waitFor(() => app.connections.length === 1 && app.last.messages.length === 1, 'start');
  const req = app.last.request;
  assert.equal(req.url, '/ws?session=42&b=2');
  assert.equal(req.headers.userid, '12345');
  assert.equal(req.headers.sessionid, 'abc-123');
  assert.equal(req.headers.host, `127.0.0.1:${app.port}`, 'a reserved extraHeaders key stays JSON-only');
  assert.equal(req.headers['sec-websocket-extensions'], undefined);
  const nonce = String(req.headers['x-plivo-signature-v3-nonce']);
  assert.match(nonce, /^\d{20}$/);
  const sigs = String(req.headers['x-plivo-signature-v3']).split(',');
  assert.equal(sigs.length, 3);
  const base = `http://127.0.0.1:${app.port}/ws?session=42&b=2`;
  assert.ok(plivo.validateV3Signature('GET', base, nonce, TOKEN, sigs[0]!));
  assert.ok(plivo.validateV3Signature('GET', `${base}/websocket`, nonce, TOKEN, sigs[2]!));
  assert.equal(req.headers['x-plivo-signature-ma-v3'], req.headers['x-plivo-signature-v3']);
  const start = app.last.messages[0]!;
  assert.equal(start.extra_headers, '{"userId":"12345","sessionId":"abc-123","Host":"evil"}');
  h.call.hangup();
  await app.close();
});

test('app drops mid-stream: re-dial with the same streamId, a fresh start, counters continue; StartStream once', async () => {
  const app = await TestWsApp.start();
  const receiver = await CallbackReceiver.start();
  const h = harness();
  const stream = h.startStream(app.url(), {
    contentType: 'audio/x-mulaw;rate=8000',
    statusCallbackUrl: receiver.url(),
  });
  await app.waitFor(() => app.connections.length === 1 && app.last.messages.length === 1, 'start');
  const frame = new Uint8Array(160).fill(0x55);
  for (let i = 0; i < 5; i++) {
    h.leg.frame(frame, h.clock.now());
    h.clock.advance(20);
  }
  await app.waitFor(() => app.last.messages.length === 6, 'five media');
  app.last.socket.terminate(); // abnormal: 1006
  await until(() => stream.debugLog.count('reconnecting') === 1, 'reconnecting');
  for (let i = 0; i < 5; i++) {
    h.leg.frame(frame, h.clock.now()); // produced while disconnected: waits in the backlog
    h.clock.advance(50);
  }
  await app.waitFor(
    () => app.connections.length === 2 && app.last.messages.length === 6,
    'new start + backlog',
  );
  const [first, second] = app.connections;
  const start2 = second!.messages[0]!;
  assert.equal(start2.event, 'start');
  assert.equal(start2.start.streamId, stream.streamId);
  assert.equal(start2.sequenceNumber, first!.messages.at(-1)!.sequenceNumber + 1);
  assert.deepEqual(
    second!.messages.slice(1).map((m) => m.media.chunk),
    [6, 7, 8, 9, 10],
  );
  assert.equal(stream.stats.reconnects, 1);
  assert.equal(stream.status, 'in-progress');
  h.call.hangup();
  await app.waitFor(() => app.last.messages.at(-1)?.event === 'stop', 'stop');
  assert.equal(app.last.messages.at(-1)!.reason, 'call_hangup');
  await until(() => receiver.received.length >= 1, 'callbacks');
  await h.runtime.callbacks.idle();
  assert.deepEqual(
    receiver.events(),
    ['StartStream'],
    'StartStream once; no callback on call hangup by default',
  );
  await receiver.close();
  await app.close();
});

test('re-dials exhausted: DroppedStream connection_lost after 2 re-dials', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url());
  await app.waitFor(() => app.connections.length === 1 && app.last.messages.length === 1, 'start');
  const port = app.port;
  await app.close(); // terminates the socket and stops listening
  await until(() => stream.debugLog.count('reconnecting') === 1, 'first re-dial scheduled');
  h.clock.advance(250);
  await until(() => stream.debugLog.count('reconnecting') === 2, 'second re-dial scheduled');
  h.clock.advance(1000);
  await until(() => stream.ended, 'dropped');
  assert.equal(stream.endReason, 'connection_lost');
  assert.equal(stream.status, 'dropped');
  assert.equal(stream.stats.connectAttempts, 3);
  void port;
  h.call.hangup();
});

test('slow consumer: DegradedStream at 30/60/90 %, then the backlog is discarded and the stream dropped', async () => {
  const app = await TestWsApp.start();
  const receiver = await CallbackReceiver.start();
  // Liveness pings are pushed out of the way: a non-reading app also misses pongs, and that path
  // (connection loss, re-dial) is tested above; this test isolates the backlog policy.
  const h = harness({ stream: { pingIntervalMs: 3_600_000 } });
  const stream = h.startStream(app.url(), {
    audioTrack: 'both',
    contentType: 'audio/x-l16;rate=16000',
    statusCallbackUrl: receiver.url(),
  });
  await app.waitFor(() => app.connections.length === 1 && app.last.messages.length === 1, 'start');
  (app.last.socket as unknown as { _socket: Socket })._socket.pause(); // the app stops reading
  const frame = new Uint8Array(160).fill(0x31);
  let ticks = 0;
  while (!stream.ended && ticks < 30_000) {
    h.leg.frame(frame, h.clock.now());
    h.clock.advance(20);
    ticks++;
    if (ticks % 4 === 0) await new Promise((r) => setImmediate(r));
  }
  assert.ok(stream.ended, `dropped after ${ticks} ticks`);
  assert.equal(stream.endReason, 'buffer_overflow');
  assert.ok(stream.stats.mediaDropped > 1000);
  await h.runtime.callbacks.idle();
  const events = receiver.received.map((r) => [
    r.params.Event,
    r.params.BufferLevel ?? r.params.Reason ?? '',
  ]);
  assert.deepEqual(events, [
    ['StartStream', ''],
    ['DegradedStream', '30'],
    ['DegradedStream', '60'],
    ['DegradedStream', '90'],
    ['DroppedStream', 'buffer_overflow'],
  ]);
  assert.equal(receiver.received.at(-1)!.params.Error, 'Connection disconnected with the remote service');
  assert.deepEqual(
    stream.debugLog
      .list()
      .filter((e) => e.code.startsWith('buffer_'))
      .map((e) => e.code),
    ['buffer_degraded', 'buffer_degraded', 'buffer_degraded', 'buffer_overflow'],
  );
  h.call.hangup();
  await receiver.close();
  await app.close();
});

test('garbage from the app: logged and ignored, the stream goes on; a 50 MB message costs a re-dial, not the stream', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const bidi = h.startStream(app.url('/bidi'), {
    bidirectional: 'true',
    contentType: 'audio/x-mulaw;rate=8000',
  });
  const oneWay = h.startStream(app.url('/oneway'));
  await app.waitFor(
    () => app.connections.length === 2 && app.connections.every((c) => c.messages.length === 1),
    'starts',
  );
  const bidiConn = app.connections.find((c) => c.request.url === '/bidi')!;
  const oneWayConn = app.connections.find((c) => c.request.url === '/oneway')!;
  const garbage = [
    'not json',
    '{"event":"dance"}',
    '{"event":"playAudio","media":{"contentType":"audio/x-mulaw","payload":"@@@@"}}',
    '{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":true,"payload":"AAAA"}}',
    '{"event":"checkpoint","name":{"x":1}}',
    '[]',
  ];
  for (const g of garbage) bidiConn.socket.send(g);
  bidiConn.socket.send(Buffer.from([1, 2, 3]), { binary: true });
  oneWayConn.socket.send(appMessages.playAudio('audio/x-mulaw', 8000, new Uint8Array(160)));
  await until(
    () => bidi.stats.received.invalid === 7 && oneWay.debugLog.count('not_bidirectional') === 1,
    'rejections',
  );
  assert.equal(bidi.debugLog.count('invalid_message'), 7);
  assert.ok(bidi.debugLog.list().some((e) => /unknown event "dance"/.test(e.message)));
  assert.ok(bidi.debugLog.list().some((e) => /base64/.test(e.message)));
  assert.equal(bidi.playoutQueuedMs, 0);
  assert.equal(oneWay.playoutQueuedMs, 0);

  // still working: a valid message after the garbage plays
  bidiConn.socket.send(appMessages.playAudio('audio/x-mulaw', 8000, new Uint8Array(160).fill(0x10)));
  await until(() => bidi.playoutQueuedMs === 20, 'valid playAudio after garbage');

  bidiConn.socket.send('x'.repeat(50 * 1024 * 1024));
  await until(() => bidi.debugLog.count('reconnecting') === 1, 'oversize message closes the socket');
  assert.ok(
    bidi.debugLog.list().some((e) => e.code === 'invalid_message' && /larger than 16777216/.test(e.message)),
  );
  h.clock.advance(250);
  await app.waitFor(() => app.connections.filter((c) => c.request.url === '/bidi').length === 2, 're-dial');
  await until(() => bidi.stats.reconnects === 1, 'reconnected');
  assert.equal(bidi.status, 'in-progress');
  assert.equal(oneWay.status, 'in-progress', 'the other stream of the call is unharmed');
  h.call.hangup();
  await app.close();
});

test('liveness: nothing received within 15 s of a ping is a connection loss, and the stream re-dials', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url());
  await app.waitForStarts(1);
  (app.last.socket as unknown as { _socket: Socket })._socket.pause(); // no pong will come back
  h.clock.advance(15_000); // ping
  h.clock.advance(14_980);
  assert.equal(stream.debugLog.count('reconnecting'), 0, 'not before the ping timeout');
  h.clock.advance(20);
  await until(() => stream.debugLog.count('reconnecting') === 1, 're-dial after the ping timeout');
  assert.ok(stream.debugLog.list().some((e) => /nothing received within 15000 ms of a ping/.test(e.message)));
  h.clock.advance(250);
  await until(() => stream.stats.reconnects === 1, 'reconnected');
  assert.equal(app.connections.length, 2);
  h.call.hangup();
  await app.close();
});
