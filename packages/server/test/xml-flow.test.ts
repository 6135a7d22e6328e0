/**
 * The XML call flow (protocol.md §1): Play → Stream(keepCallAlive) → Play after the app closes the
 * socket → end of document → hangup, hangup URL once with the right Duration; answer-URL failures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createRuntime, parseConfig, writeWav } from '../src/index.js';
import { XmlSession } from '../src/xml/interpreter.js';
import { TestLeg, TestWsApp } from '../src/testing/index.js';
import { assertSignedCallback, harness, until } from './helpers.js';

interface Hit {
  path: string;
  params: Record<string, string>;
  headers: Record<string, unknown>;
  method: string;
  url: string;
}

/** A tiny answer-URL app: path → handler (status, body). */
async function xmlApp(
  routes: Record<string, (hit: Hit) => { status?: number; body: string | Buffer; delayMs?: number }>,
) {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${req.url}`;
      const path = new URL(url).pathname;
      const params =
        req.method === 'POST'
          ? Object.fromEntries(new URLSearchParams(body))
          : Object.fromEntries(new URL(url).searchParams);
      const hit = {
        path,
        params,
        headers: req.headers as Record<string, unknown>,
        method: req.method ?? '',
        url,
      };
      hits.push(hit);
      const h = routes[path];
      if (!h) return res.writeHead(404).end();
      const r = h(hit);
      setTimeout(() => res.writeHead(r.status ?? 200).end(r.body), r.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    hits,
    base,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const tone = (hz: number, ms: number) => {
  const n = (8000 * ms) / 1000;
  return writeWav(
    new Int16Array(n).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 8000))),
    8000,
  );
};

function runtime(extra: Record<string, unknown> = {}) {
  return createRuntime(parseConfig({ authToken: 'xml-test-token', ...extra }), {
    logger: pino({ level: 'silent' }),
  });
}

test('<Play> failures: a file over xml.maxPlayBytes and a 404 are skipped with play_failed; the next prompt plays', async () => {
  let base = '';
  const web = await xmlApp({
    '/answer': () => ({
      body: `<Response><Play>${base}/big.wav</Play><Play>${base}/missing.wav</Play><Play>${base}/ok.wav</Play></Response>`,
    }),
    '/big.wav': () => ({ body: tone(500, 1000) }), // 16 044 bytes
    '/ok.wav': () => ({ body: tone(700, 200) }),
  });
  base = web.base;
  const rt = runtime({ xml: { maxPlayBytes: 8000 } });
  const leg = new TestLeg();
  const call = rt.newCall(leg, { from: '1555', to: '1666' });
  const session = new XmlSession(rt, call, { answer: { url: `${web.base}/answer`, method: 'POST' } });
  try {
    await session.run();
    assert.deepEqual(session.executed, ['Play', 'Play', 'Play']);
    const failures = call.debugLog
      .list()
      .filter((e) => e.code === 'play_failed')
      .map((e) => e.message);
    assert.equal(failures.length, 2, failures.join(' | '));
    assert.match(failures[0]!, /big\.wav: file larger than 8000 bytes \(xml\.maxPlayBytes\)/);
    assert.match(failures[1]!, /missing\.wav: HTTP 404/);
    assert.equal(leg.sent.filter((s) => s.info.hasPlayback).length, 10, 'only the 200 ms prompt played');
  } finally {
    call.hangup();
    await rt.close();
    await web.close();
  }
});

test('<Play> plays each frame once when a stall makes several ticks run in one turn (no replay of its start before it is detached)', async () => {
  let base = '';
  const web = await xmlApp({
    '/answer': () => ({ body: `<Response><Play>${base}/one.wav</Play><Wait length="1"/></Response>` }),
    '/one.wav': () => ({ body: tone(500, 300) }), // 2400 samples: exactly 15 frames
  });
  base = web.base;
  const h = harness({ authToken: 'xml-test-token' });
  const session = new XmlSession(h.runtime, h.call, {
    answer: { url: `${web.base}/answer`, method: 'POST' },
  });
  try {
    const running = session.run();
    await until(() => {
      h.clock.advance(20);
      return h.leg.sent.some((s) => s.info.hasPlayback);
    }, 'the prompt starts');
    // A stall caught up at once: 20 ticks in one synchronous turn. The prompt ends during it and is
    // detached only afterwards (a microtask), so the last ticks still pull from it.
    h.clock.advance(400);
    const playback = h.leg.sent.filter((s) => s.info.hasPlayback);
    assert.equal(playback.length, 15, `frames with the prompt: ${playback.length}`);
    const tail = h.leg.sent.slice(h.leg.sent.indexOf(playback.at(-1)!) + 1);
    assert.ok(tail.length >= 4, `ticks after the prompt in the same turn: ${tail.length}`);
    h.call.hangup();
    await running;
  } finally {
    h.call.hangup();
    await h.runtime.close();
    await web.close();
  }
});

test('a hangup during <Play> ends the document at once (the wait right after the download stays interruptible)', async () => {
  let base = '';
  const web = await xmlApp({
    '/answer': () => ({ body: `<Response><Play>${base}/long.wav</Play></Response>` }),
    '/long.wav': () => ({ body: tone(500, 5000) }),
  });
  base = web.base;
  const rt = runtime();
  const leg = new TestLeg();
  const call = rt.newCall(leg, { from: '1555', to: '1666' });
  const session = new XmlSession(rt, call, { answer: { url: `${web.base}/answer`, method: 'POST' } });
  try {
    let ended = false;
    const running = session.run().then(() => (ended = true));
    await until(() => leg.sent.some((s) => s.info.hasPlayback), 'the prompt plays');
    call.hangup();
    await until(() => ended, 'the document ended after the hangup', 2000);
    await running;
    assert.ok(leg.sent.filter((s) => s.info.hasPlayback).length < 100, 'not played to the end');
  } finally {
    call.hangup();
    await rt.close();
    await web.close();
  }
});

test('Play → Stream(keepCallAlive) → Play after the app closes → hangup; hangup URL once with Duration', async () => {
  const ws = await TestWsApp.start();
  let base = '';
  const web = await xmlApp({
    '/answer': () => ({
      body: `<Response><Play>${base}/one.wav</Play><Stream keepCallAlive="true" bidirectional="true" contentType="audio/x-mulaw;rate=8000">${ws.url('/bot')}</Stream><Play>${base}/two.wav</Play><GetDigits/></Response>`,
    }),
    '/one.wav': () => ({ body: tone(500, 300) }),
    '/two.wav': () => ({ body: tone(900, 300) }),
    '/hangup': () => ({ body: 'ok' }),
  });
  base = web.base;
  const rt = runtime();
  const leg = new TestLeg();
  const call = rt.newCall(leg, { from: '1555', to: '1666' });
  const session = new XmlSession(rt, call, {
    answer: { url: `${web.base}/answer`, method: 'POST' },
    hangup: { url: `${web.base}/hangup`, method: 'POST' },
  });
  try {
    const running = session.run();
    await ws.waitForStarts(1);
    const streamStartedAt = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const stream = [...call.streams.values()][0]!;
    ws.last.socket.close(1000);
    await running;
    await call.done;
    assert.equal(stream.endReason, 'remote_closed');
    assert.deepEqual(session.executed, ['Play', 'Stream', 'Play', 'GetDigits']);
    assert.ok(
      call.debugLog.list().some((e) => e.code === 'element_skipped' && e.message.includes('GetDigits')),
    );
    // Frames: tone one, then silence while the stream ran, then tone two — only after the stream ended.
    const playback = leg.sent.map((s) => s.info.hasPlayback);
    const firstRun = playback.indexOf(true);
    const gapStart = playback.indexOf(false, firstRun);
    const secondRun = playback.indexOf(true, gapStart);
    assert.ok(
      firstRun >= 0 && gapStart > firstRun && secondRun > gapStart,
      'two prompts separated by the stream',
    );
    // Run lengths (+playback / -silence) in the message, so a failure shows where frames came from.
    const runs: string[] = [];
    for (let i = 0, j = 0; i < playback.length; i = j) {
      while (j < playback.length && playback[j] === playback[i]) j++;
      runs.push(`${playback[i] ? '+' : '-'}${j - i}`);
    }
    assert.equal(playback.filter(Boolean).length, 30, `2 × 300 ms of prompts; runs ${runs.join(' ')}`);
    assert.ok(
      secondRun - gapStart >= 15,
      `second prompt waited for the stream (${secondRun - gapStart} frames)`,
    );
    assert.ok(Date.now() - streamStartedAt >= 300);
    // Hangup URL: once, signed, right Duration.
    await until(() => web.hits.some((h) => h.path === '/hangup'), 'hangup URL');
    await rt.callbacks.idle();
    const hangups = web.hits.filter((h) => h.path === '/hangup');
    assert.equal(hangups.length, 1);
    const p = hangups[0]!.params;
    assert.equal(p.CallStatus, 'completed');
    assert.equal(p.HangupCause, 'NORMAL_CLEARING');
    assert.equal(p.Duration, String(Math.round((call.endedAt! - call.startedAt) / 1000)));
    assert.equal(p.BillDuration, p.Duration);
    assertSignedCallback(hangups[0]!, 'xml-test-token');
    const answerHit = web.hits.find((h) => h.path === '/answer')!;
    assert.deepEqual(
      [
        answerHit.params.CallUUID,
        answerHit.params.From,
        answerHit.params.CallStatus,
        answerHit.params.Direction,
      ],
      [call.info.callId, '1555', 'ringing', 'inbound'],
    );
    assertSignedCallback(answerHit, 'xml-test-token');
  } finally {
    await rt.close();
    await ws.close();
    await web.close();
  }
});

test('answer URL failures: 500 ×3 then fallback; non-XML, entities, oversize and timeouts end in a hangup with the causes logged', async () => {
  const web = await xmlApp({
    '/500': () => ({ status: 500, body: 'boom' }),
    '/fallback': () => ({ body: '<Response><Hangup reason="busy"/></Response>' }),
    '/json': () => ({ body: '{"hello":"world"}' }),
    '/xxe': () => ({
      body: '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response><Speak>&x;</Speak></Response>',
    }),
    '/huge': () => ({ body: `<Response><Speak>${'a'.repeat(10 * 1024 * 1024)}</Speak></Response>` }),
    '/slow': () => ({ body: '<Response/>', delayMs: 800 }),
  });
  const rt = runtime({ xml: { timeoutMs: 300 } });
  try {
    const run = async (path: string, fallback?: string) => {
      const call = rt.newCall(new TestLeg());
      await new XmlSession(rt, call, {
        answer: { url: `${web.base}${path}`, method: 'POST' },
        fallback: fallback ? { url: `${web.base}${fallback}`, method: 'GET' } : null,
      }).run();
      assert.ok(call.ended);
      return call;
    };
    const fb = await run('/500', '/fallback');
    assert.equal(web.hits.filter((h) => h.path === '/500').length, 3);
    assert.equal(web.hits.filter((h) => h.path === '/fallback').length, 1);
    assert.equal(await fb.done, 'USER_BUSY');
    for (const [path, why] of [
      ['/json', /malformed|Response/],
      ['/xxe', /DTD/],
      ['/huge', /larger than 102400/],
      ['/slow', /no response within 300 ms/],
    ] as const) {
      const call = await run(path);
      assert.equal(await call.done, 'ANSWER_URL_FAILED', path);
      const errors = call.debugLog.list().filter((e) => e.code === 'answer_url_failed');
      assert.equal(errors.length, 3, path);
      assert.match(errors[0]!.message, why, path);
    }
  } finally {
    await rt.close();
    await web.close();
  }
});
