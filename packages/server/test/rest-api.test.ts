/**
 * The REST API (protocol.md §2) driven by the official plivo SDK and raw HTTP, on SQLite
 * (and PostgreSQL when CALLSTREAM_TEST_DATABASE_URL is set).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseConfig, startServer, type ConfigInput, type Server } from '../src/index.js';
import { TestWsApp } from '../src/testing/index.js';
import { plivoSdk, redirectPlivo, type PlivoClient } from './plivo-sdk.js';
import { testDatabaseUrl, until } from './helpers.js';

const AUTH_ID = 'MATESTACCOUNT0000001';
const TOKEN = 'test-auth-token-123';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let server: Server;
let app: TestWsApp;
let client: PlivoClient;
let restore: () => void;
const auth = `Basic ${Buffer.from(`${AUTH_ID}:${TOKEN}`).toString('base64')}`;

async function http(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers: {
      authorization: auth,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

async function newCall(): Promise<string> {
  const r = await http('POST', `/v1/Account/${AUTH_ID}/SimulatedCall/`, {
    from: '15551230000',
    to: '15559870000',
  });
  assert.equal(r.status, 201);
  return r.body.call_uuid;
}

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-rest-'));
  const databaseUrl = await testDatabaseUrl();
  const config = parseConfig({
    authId: AUTH_ID,
    authToken: TOKEN,
    http: { port: 0 },
    sip: { enabled: false },
    store: {
      sqliteFile: join(dir, 'db.sqlite'),
      ...(process.env.CALLSTREAM_TEST_DATABASE_URL
        ? { databaseUrl: process.env.CALLSTREAM_TEST_DATABASE_URL }
        : {}),
    },
    log: { level: 'silent' },
  });
  server = await startServer(config, { simulatedCalls: true, logger: pino({ level: 'silent' }) });
  assert.equal(server.store.kind, databaseUrl ? 'postgres' : 'sqlite');
  app = await TestWsApp.start();
  restore = redirectPlivo(server.baseUrl);
  client = new plivoSdk.Client(AUTH_ID, TOKEN);
});
after(async () => {
  restore();
  await app.close();
  await server.close({ drainMs: 100 });
});

test('stream start, get, list, stop one, stop all through the official SDK, with exact shapes', async () => {
  const callUuid = await newCall();
  const started = await client.calls.stream(callUuid, app.url('/a?x=1'), {
    bidirectional: true,
    audioTrack: 'inbound',
    contentType: 'audio/x-mulaw;rate=8000',
    statusCallbackUrl: 'http://127.0.0.1:9/cb',
    extraHeaders: 'userId=7',
    keepCallAlive: true,
  });
  assert.equal(started.message, 'audio streaming started');
  assert.match(started.streamId, UUID);
  assert.match(started.apiId, UUID);
  await app.waitForStarts(1);
  await until(() => server.records.liveStream(started.streamId)?.firstMediaAt != null, 'first media');

  const one = await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/${started.streamId}`);
  assert.equal(one.status, 200);
  assert.deepEqual(Object.keys(one.body), [
    'api_id',
    'audio_track',
    'bidirectional',
    'bill_duration',
    'billed_amount',
    'call_uuid',
    'content_type',
    'created_at',
    'end_time',
    'plivo_auth_id',
    'resource_uri',
    'rounded_bill_duration',
    'service_url',
    'start_time',
    'status',
    'status_callback_url',
    'stream_id',
  ]);
  assert.equal(one.body.status, 'in-progress');
  assert.equal(one.body.bidirectional, true);
  assert.equal(one.body.content_type, 'audio/x-mulaw;rate=8000');
  assert.equal(one.body.service_url, app.url('/a?x=1'));
  assert.equal(one.body.billed_amount, '0.00000');
  assert.equal(one.body.end_time, null);
  assert.match(one.body.created_at, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$/);
  assert.match(one.body.start_time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00$/);
  assert.equal(one.body.resource_uri, `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/${started.streamId}/`);
  assert.equal(one.body.plivo_auth_id, AUTH_ID);

  const viaSdk = await client.calls.getStream(callUuid, started.streamId);
  assert.equal(viaSdk.streamId, started.streamId);

  const second = await client.calls.stream(callUuid, app.url('/b'));
  const list = await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/?limit=1&offset=0`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.meta, {
    limit: 1,
    next: `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/?limit=1&offset=1`,
    offset: 0,
    previous: null,
    total_count: 2,
  });
  assert.equal(list.body.objects[0].stream_id, started.streamId, 'oldest first');
  const all = await client.calls.getAllStream(callUuid);
  assert.equal(all.meta.totalCount, 2);

  await client.calls.stopStream(callUuid, started.streamId);
  await app.waitFor(() => app.connections[0]!.messages.at(-1)?.event === 'stop', 'stop event');
  assert.equal(app.connections[0]!.messages.at(-1)!.reason, 'api_request');
  const stopped = await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/${started.streamId}/`);
  assert.equal(stopped.body.status, 'stopped');
  assert.equal(stopped.body.rounded_bill_duration, 60);
  assert.equal(stopped.body.billed_amount, '0.00300');
  assert.match(stopped.body.end_time, /\+00:00$/);

  const again = await http(
    'DELETE',
    `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/${started.streamId}/`,
    {},
  );
  assert.deepEqual([again.status, again.body.error], [400, 'No active stream found']);
  assert.equal((await http('DELETE', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/`, {})).status, 204);
  assert.equal(server.records.liveStream(second.streamId)?.status, 'stopped');
  assert.equal(
    (await http('DELETE', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/`)).status,
    204,
    'also when none active',
  );

  const log = await http(
    'GET',
    `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/${started.streamId}/DebugLog/`,
  );
  assert.equal(log.status, 200);
  assert.ok(log.body.objects.some((e: { code: string }) => e.code === 'connected'));
  assert.match(log.body.objects[0].timestamp, /Z$/);
});

test('errors: exact texts and statuses of protocol.md §2.2, nothing created', async () => {
  const callUuid = await newCall();
  const base = `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/`;
  const err = async (body: unknown) => {
    const r = await http('POST', base, body);
    return [r.status, r.body.error];
  };
  assert.deepEqual(await err({}), [400, 'service_url is required']);
  assert.deepEqual(await err({ service_url: app.url('/x'), bidirectional: true, audio_track: 'both' }), [
    400,
    'audio_track must be inbound when bidirectional is true',
  ]);
  assert.deepEqual(await err({ service_url: app.url('/x'), content_type: 'audio/ogg' }), [
    400,
    'content_type must be one of audio/x-l16;rate=8000, audio/x-l16;rate=16000, audio/x-mulaw;rate=8000',
  ]);
  assert.equal((await http('POST', base, { service_url: app.url('/dup') })).status, 202);
  assert.deepEqual(await err({ service_url: app.url('/dup') }), [
    400,
    'an active stream already exists for this service_url',
  ]);
  const list = await http('GET', base);
  assert.equal(list.body.meta.total_count, 1, 'rejected starts create no record');

  await assert.rejects(
    client.calls.stream(callUuid, 'http://not-ws'),
    (e: Error & { status?: number }) => e.status === 400 && /service_url must be a ws/.test(e.message),
  );
  const unknown = '8c43a765-94fa-4ee9-b9a3-242703e41f63';
  const nf = await http('POST', `/v1/Account/${AUTH_ID}/Call/${unknown}/Stream/`, {
    service_url: app.url('/z'),
  });
  assert.deepEqual([nf.status, nf.body.error], [404, 'call not found']);
  await assert.rejects(
    client.calls.getStream(callUuid, unknown),
    (e: Error & { status?: number }) => e.status === 404 && e.message === 'stream not found',
  );
  assert.deepEqual(
    (await http('GET', `/v1/Account/${AUTH_ID}/Call/..%2F..%2Fetc%2Fpasswd/Stream/`)).body.error,
    'call not found',
  );
  assert.equal(
    (await http('GET', `/v1/Account/${AUTH_ID}/Call/../../etc/passwd/Stream/`)).status,
    401,
    'normalised out of the account: no data',
  );
  assert.deepEqual(
    (await http('GET', `${base}?limit=21`)).body.error,
    'limit must be an integer between 1 and 20',
  );
  assert.deepEqual(
    (await http('GET', `${base}?offset=-1`)).body.error,
    'offset must be a non-negative integer',
  );
  assert.deepEqual((await http('PUT', base, {})).body.error, 'method not allowed');
  assert.deepEqual((await http('GET', `/v1/Account/${AUTH_ID}/Nope/`)).body.error, 'not found');
  const bad = await http('POST', base, '{"service_url": ');
  assert.equal(bad.status, 400);
  const big = await http(
    'POST',
    base,
    JSON.stringify({ service_url: app.url('/big'), pad: 'x'.repeat(10 * 1024 * 1024) }),
  );
  assert.deepEqual([big.status, big.body.error], [413, 'request body too large']);
  const sqlish = await http('POST', base, {
    service_url: `${app.url('/q')}?a='; DROP TABLE streams; --`,
    extra_headers: "x=1' OR '1'='1",
  });
  assert.equal(sqlish.status, 400);
  const evil = "x'; DROP TABLE streams; --";
  for (const field of [
    'service_url',
    'bidirectional',
    'audio_track',
    'stream_timeout',
    'status_callback_url',
    'status_callback_method',
    'content_type',
    'extra_headers',
  ]) {
    const r = await http('POST', base, { service_url: app.url('/sql'), [field]: evil });
    assert.equal(r.status, 400, field);
    assert.match(r.body.error, new RegExp(field), field);
  }
  const wrongTypes = await http('POST', base, { service_url: ['ws://a'], bidirectional: { x: 1 } });
  assert.equal(wrongTypes.body.error, 'service_url is required');
  assert.equal((await http('GET', base)).body.meta.total_count, 1, 'nothing changed');
});

test('auth: missing or wrong credentials, or another account in the path → 401 with WWW-Authenticate', async () => {
  const noAuth = await fetch(`${server.baseUrl}/v1/Account/${AUTH_ID}/Call/?status=live`);
  assert.equal(noAuth.status, 401);
  assert.equal(noAuth.headers.get('www-authenticate'), 'Basic realm="callstream"');
  assert.equal(((await noAuth.json()) as { error: string }).error, 'authentication failed');
  const wrong = await http('GET', `/v1/Account/${AUTH_ID}/Call/?status=live`, undefined, {
    authorization: `Basic ${Buffer.from(`${AUTH_ID}:nope`).toString('base64')}`,
  });
  assert.equal(wrong.status, 401);
  const other = await http('GET', `/v1/Account/MAOTHERACCOUNT000001/Call/?status=live`);
  assert.equal(other.status, 401);
  await assert.rejects(
    new plivoSdk.Client(AUTH_ID, 'bad-token').calls.listLiveCalls(),
    (e: Error & { status?: number }) => e.status === 401,
  );
});

test('calls: list live, get live, hang up (streams stop with call_hangup), 404 after', async () => {
  const callUuid = await newCall();
  const live = (await client.calls.listLiveCalls()) as unknown as Array<{ callUuid: string }>;
  assert.ok(
    live.some((c) => c.callUuid === callUuid),
    'the SDK lists the live call',
  );
  assert.ok((await http('GET', `/v1/Account/${AUTH_ID}/Call/?status=live`)).body.calls.includes(callUuid));
  const one = await client.calls.getLiveCall(callUuid);
  assert.equal(one.callUuid, callUuid);
  const raw = await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/?status=live`);
  assert.deepEqual(Object.keys(raw.body), [
    'api_id',
    'call_status',
    'call_uuid',
    'caller_name',
    'direction',
    'from',
    'request_uuid',
    'session_start',
    'to',
  ]);
  assert.equal(raw.body.from, '15551230000');
  assert.match(raw.body.session_start, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
  assert.equal(
    (await http('GET', `/v1/Account/${AUTH_ID}/Call/`)).body.error,
    'only status=live is supported',
  );
  const s = await client.calls.stream(callUuid, app.url('/h'));
  await until(() => server.records.liveStream(s.streamId)?.status === 'in-progress', 'connected');
  assert.equal(await client.calls.hangup(callUuid), true);
  assert.equal(
    (await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/${s.streamId}/`)).body.status,
    'stopped',
  );
  assert.equal(
    (await http('DELETE', `/v1/Account/${AUTH_ID}/Call/${callUuid}/`)).body.error,
    'call not found',
  );
  assert.equal((await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/?status=live`)).status, 404);
  assert.equal(
    (await http('GET', `/v1/Account/${AUTH_ID}/Call/${callUuid}/Stream/`)).status,
    200,
    'ended calls keep their records',
  );
  const mk = await http('POST', `/v1/Account/${AUTH_ID}/Call/`, { from: '1', to: '2' });
  assert.deepEqual([mk.status, mk.body.error], [400, 'answer_url is required']);
});

test('/metrics exposes live calls, streams and counters in Prometheus format', async () => {
  const res = await fetch(`${server.baseUrl}/metrics`);
  const text = await res.text();
  for (const name of [
    'callstream_live_calls',
    'callstream_live_streams',
    'callstream_media_frames_sent_total',
    'callstream_ws_reconnects_total',
    'callstream_callbacks_pending',
    'callstream_playout_queue_ms',
    'callstream_playout_lateness_ms',
    'callstream_playout_dry_spell_seconds_total',
    'callstream_outbox_transactions_total',
    'callstream_outbox_rows_total',
    'callstream_store_write_errors_total',
  ]) {
    assert.match(text, new RegExp(`^${name} \\d+`, 'm'), name);
  }
  assert.match(text, /^callstream_playout_lateness_forgone_seconds_total\{reason="ahead"\} \d+/m);
  assert.ok(Number(/^callstream_media_frames_sent_total (\d+)/m.exec(text)![1]) > 0);
});

test('make call to a simulated party runs the answer URL; transfer replaces the document; streams survive', async () => {
  const { createServer } = await import('node:http');
  const hits: string[] = [];
  let wsUrl = '';
  const web = createServer((req, res) => {
    hits.push(req.url ?? '');
    const xml =
      req.url === '/answer'
        ? `<Response><Stream keepCallAlive="false">${wsUrl}</Stream><Wait length="30"/></Response>`
        : '<Response><Wait length="30"/></Response>';
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/xml' }).end(xml));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
  wsUrl = app.url('/xml');
  try {
    const made = await client.calls.create('15551230000', 'sim:alice', `${base}/answer`, {
      answerMethod: 'POST',
    });
    assert.equal(made.message, 'call fired');
    assert.match(made.requestUuid, UUID);
    await app.waitFor(
      () => app.connections.some((c) => c.request.url === '/xml' && c.messages.length > 0),
      'stream from the XML',
    );
    const streams = await http('GET', `/v1/Account/${AUTH_ID}/Call/${made.requestUuid}/Stream/`);
    assert.equal(streams.body.meta.total_count, 1);
    const t = await client.calls.transfer(made.requestUuid, {
      legs: 'aleg',
      alegUrl: `${base}/next`,
      alegMethod: 'GET',
    });
    assert.equal(t.message, 'call transferred');
    await until(
      () => hits.includes('/next?' + '') || hits.some((h) => h.startsWith('/next')),
      'transfer fetched',
    );
    const live = await http(
      'GET',
      `/v1/Account/${AUTH_ID}/Call/${made.requestUuid}/Stream/${streams.body.objects[0].stream_id}/`,
    );
    assert.equal(live.body.status, 'in-progress', 'the stream survives the transfer');
    const sip = await http('POST', `/v1/Account/${AUTH_ID}/Call/`, {
      from: '1',
      to: 'sip:bob@example.com',
      answer_url: `${base}/answer`,
    });
    assert.equal(sip.status, 501);
    assert.equal(await client.calls.hangup(made.requestUuid), true);
  } finally {
    web.closeAllConnections();
    web.close();
  }
});

/** A second server (SQLite in a temp dir, SimulatedCall on) with admission limits (config `calls`). */
async function serverWithLimits(calls: ConfigInput['calls']) {
  const dir = mkdtempSync(join(tmpdir(), 'cs-rest-limits-'));
  const s = await startServer(
    parseConfig({
      authId: AUTH_ID,
      authToken: TOKEN,
      http: { port: 0 },
      sip: { enabled: false },
      store: { sqliteFile: join(dir, 'db.sqlite') },
      log: { level: 'silent' },
      calls,
    }),
    { simulatedCalls: true, logger: pino({ level: 'silent' }) },
  );
  const postSimulatedCall = () =>
    fetch(`${s.baseUrl}/v1/Account/${AUTH_ID}/SimulatedCall/`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({ from: '15551230000', to: '15559870000' }),
    });
  return { server: s, postSimulatedCall };
}

test('admission control over REST: a SimulatedCall over calls.maxConcurrent or calls.maxPerSecond gets 503 (Retry-After for the rate), counted on /metrics', async () => {
  const { server: limited, postSimulatedCall: post } = await serverWithLimits({
    maxConcurrent: 1,
    maxPerSecond: 0.01, // one call per 100 s
  });
  try {
    const first = await post();
    assert.equal(first.status, 201);
    const callUuid = ((await first.json()) as { call_uuid: string }).call_uuid;
    const busy = await post();
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get('retry-after'), null);
    assert.match(((await busy.json()) as { error: string }).error, /calls\.maxConcurrent/);
    const hangup = await fetch(`${limited.baseUrl}/v1/Account/${AUTH_ID}/Call/${callUuid}/`, {
      method: 'DELETE',
      headers: { authorization: auth },
    });
    assert.equal(hangup.status, 204);
    await until(() => limited.runtime.admission.active === 0, 'the hung-up call released its place');
    const tooSoon = await post();
    assert.equal(tooSoon.status, 503);
    assert.equal(tooSoon.headers.get('retry-after'), '100');
    assert.match(((await tooSoon.json()) as { error: string }).error, /calls\.maxPerSecond/);
    const metrics = await (await fetch(`${limited.baseUrl}/metrics`)).text();
    assert.match(metrics, /callstream_calls_refused_total\{reason="max_concurrent"\} 1\n/);
    assert.match(metrics, /callstream_calls_refused_total\{reason="max_rate"\} 1\n/);
  } finally {
    await limited.close({ drainMs: 100 });
  }
});

test('admission control over REST: with calls.maxLoad a busy event loop refuses a SimulatedCall with 503 and Retry-After: 1', async () => {
  // Any work at all in the last second is "too busy".
  const { server: loaded, postSimulatedCall } = await serverWithLimits({ maxLoad: 1e-6 });
  try {
    const busyFor = performance.now() + 100;
    while (performance.now() < busyFor); // 100 ms of the loop's next reading
    await new Promise((r) => setTimeout(r, 1100)); // the first reading, after one second
    const res = await postSimulatedCall();
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.match(((await res.json()) as { error: string }).error, /server overloaded: event loop \d+ % busy/);
    assert.equal(loaded.runtime.admission.stats.refused.overload, 1);
  } finally {
    await loaded.close({ drainMs: 100 });
  }
});
