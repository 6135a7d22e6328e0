/**
 * SIP ingress with a real SIP peer (sipp, Debian `sip-tester`): real speech as μ-law RTP reaches the
 * WebSocket app bit-exact; RFC 4733 pcaps become `dtmf` events; BYE from the caller ends the call;
 * answer-URL parameters are signed and complete.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createRuntime, parseConfig, type Runtime } from '../src/index.js';
import { SipServer } from '../src/ingress/sip/sip-server.js';
import { readWav } from '../src/media/wav.js';
import { g711Encode } from '../src/media/g711.js';
import {
  TestWsApp,
  TestSipPeer,
  bestLagCorrelation,
  runSipp,
  freeUdpPort,
  pcapPlays,
  writeRtpPcap,
  mulawToRtpPackets,
} from '../src/testing/index.js';
import { g711Decode } from '../src/media/g711.js';
import { until } from './helpers.js';

const SCENARIOS = new URL('./sipp/', import.meta.url).pathname;
const TOKEN = 'sip-test-token-123';

/** An answer URL server: returns `xml()` and records every request's parameters. */
class AnswerServer {
  readonly requests: Array<{ path: string; params: URLSearchParams; headers: http.IncomingHttpHeaders }> = [];
  private server!: http.Server;
  constructor(public xml: (path: string) => string) {}
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', async () => {
        if (req.url === '/slow') await new Promise((r) => setTimeout(r, 3000));
        this.requests.push({ path: req.url ?? '', params: new URLSearchParams(body), headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(this.xml(req.url ?? ''));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
  }
  url(path: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

let app: TestWsApp;
let answers: AnswerServer;
let runtime: Runtime;
let sip: SipServer;
let speechMulaw: Uint8Array;
let outboundTrunkPort = 0;
const dir = mkdtempSync(join(tmpdir(), 'cs-sip-'));

before(async () => {
  app = await TestWsApp.start();
  answers = new AnswerServer((path) => {
    if (path === '/flow')
      return `<Response><Speak>Welcome to the flow test.</Speak><Stream bidirectional="true" keepCallAlive="true" contentType="audio/x-mulaw;rate=8000">${app.url('/flow')}</Stream><Speak voice="MAN">Goodbye now.</Speak></Response>`;
    if (path === '/hangup-after-wait') return '<Response><Wait length="1"/><Hangup/></Response>';
    if (path === '/outbound')
      return `<Response><Stream contentType="audio/x-mulaw;rate=8000">${app.url('/outbound')}</Stream><Speak>Hello from callstream.</Speak><Wait length="1"/></Response>`;
    return `<Response><Stream keepCallAlive="true" contentType="audio/x-mulaw;rate=8000" extraHeaders="who=sipp">${app.url()}</Stream></Response>`;
  });
  await answers.start();
  const config = parseConfig({
    authToken: TOKEN,
    log: { level: 'silent' },
    sip: {
      host: '127.0.0.1',
      port: 0,
      rtpPortMin: 31000,
      rtpPortMax: 31999,
      trunk: { host: '127.0.0.1', port: (outboundTrunkPort = await freeUdpPort()) },
    },
    applications: [
      {
        name: 'bot',
        answerUrl: answers.url('/answer'),
        hangupUrl: answers.url('/hangup'),
        numbers: ['5550100'],
      },
      {
        name: 'flow',
        answerUrl: answers.url('/flow'),
        hangupUrl: answers.url('/flow-hangup'),
        numbers: ['5550200'],
      },
      { name: 'hangup', answerUrl: answers.url('/hangup-after-wait'), numbers: ['5550300'] },
      { name: 'slow', answerUrl: answers.url('/slow'), numbers: ['5550400'] },
    ],
    defaultApplication: 'bot',
  });
  runtime = createRuntime(config, { logger: pino({ level: process.env.SIP_DEBUG ? 'debug' : 'silent' }) });
  sip = await SipServer.start(runtime);
  const wav = readWav(readFileSync(new URL('../../../fixtures/speech-8k.wav', import.meta.url)));
  speechMulaw = g711Encode('mulaw', wav.samples.subarray(0, 8000 * 3));
});

after(async () => {
  await sip.close();
  await runtime.close();
  await app.close();
  await answers.close();
});

test('sipp call: real speech as μ-law RTP reaches the WebSocket app bit-exact; BYE from the caller stops the stream', async () => {
  const pcap = join(dir, 'speech.pcap');
  writeRtpPcap(pcap, mulawToRtpPackets(speechMulaw));
  const before = app.connections.length;
  const result = await runSipp({
    scenario: join(SCENARIOS, 'uac-pcap.xml'),
    vars: { plays: pcapPlays([[pcap, 3600]]) },
    target: `127.0.0.1:${sip.port}`,
    service: '5550100',
  });
  assert.equal(result.exitCode, 0, `sipp failed:\n${result.errors}\n${result.stderr}`);
  await until(() => app.connections.length > before && app.connections.at(-1)!.closed, 'stream closed');
  const conn = app.connections.at(-1)!;
  const start = conn.messages.find((m) => m.event === 'start')!;
  assert.equal(start.start.mediaFormat.encoding, 'audio/x-mulaw');
  assert.equal(start.extra_headers, '{"who":"sipp"}');
  const media = conn.messages.filter((m) => m.event === 'media');
  const got = Buffer.concat(media.map((m) => Buffer.from(m.media.payload as string, 'base64')));
  // Align on the frame at 1 s (the first packets may precede the WebSocket connection), then
  // compare every byte that overlaps.
  const k = 50 * 160;
  const at = got.indexOf(Buffer.from(speechMulaw.subarray(k, k + 160)));
  assert.ok(at >= 0, 'speech found in the stream');
  assert.equal(at % 160, 0, 'speech on a frame boundary');
  const offset = at - k; // position of speech byte 0 in `got`
  const from = Math.max(0, -offset);
  const to = Math.min(speechMulaw.length, got.length - offset);
  assert.ok(
    to - from >= speechMulaw.length * 0.9,
    `at least 90 % of the speech arrived (${to - from} bytes)`,
  );
  assert.deepEqual(got.subarray(offset + from, offset + to), Buffer.from(speechMulaw.subarray(from, to)));
  const stop = conn.messages.find((m) => m.event === 'stop');
  assert.ok(stop, 'stop event sent on BYE');
  // Answer URL: Plivo's parameters, V3-signed, CallStatus ringing, INVITE X- headers as SIP-H-*.
  const answer = answers.requests.find((r) => r.path === '/answer')!;
  assert.equal(answer.params.get('To'), '5550100');
  assert.equal(answer.params.get('From'), '15550001111');
  assert.equal(answer.params.get('Direction'), 'inbound');
  assert.equal(answer.params.get('CallStatus'), 'ringing');
  assert.equal(answer.params.get('CallerName'), 'Test Caller');
  assert.equal(answer.params.get('SIP-H-X-Customer-Id'), 'cust-42');
  assert.ok(answer.headers['x-plivo-signature-v3']);
  await until(() => answers.requests.some((r) => r.path === '/hangup'), 'hangup URL called');
  const hangup = answers.requests.find((r) => r.path === '/hangup')!;
  assert.equal(hangup.params.get('HangupCause'), 'NORMAL_CLEARING');
  assert.ok(Number(hangup.params.get('Duration')) >= 3);
});

test('sipp call: RFC 4733 pcaps from sip-tester become one dtmf event per key press', async () => {
  const digits = ['1', '5', '9', '0', 'star', 'pound'];
  // Media (and DTMF) begin after the stream's `start` (protocol.md §3.2): lead with 600 ms of audio.
  const lead = join(dir, 'lead.pcap');
  writeRtpPcap(lead, mulawToRtpPackets(speechMulaw.subarray(0, 8000 * 0.6)));
  const before = app.connections.length;
  const result = await runSipp({
    scenario: join(SCENARIOS, 'uac-pcap.xml'),
    vars: {
      plays: pcapPlays([
        [lead, 700],
        ...digits.map((d): [string, number] => [`/usr/share/sip-tester/dtmf_2833_${d}.pcap`, 400]),
      ]),
    },
    target: `127.0.0.1:${sip.port}`,
    service: '5550100',
  });
  assert.equal(result.exitCode, 0, `sipp failed:\n${result.errors}\n${result.stderr}`);
  await until(() => app.connections.length > before && app.connections.at(-1)!.closed, 'stream closed');
  const dtmf = app.connections
    .at(-1)!
    .messages.filter((m) => m.event === 'dtmf')
    .map((m) => m.dtmf.digit);
  assert.deepEqual(dtmf, ['1', '5', '9', '0', '*', '#']);
});

test('XML flow over SIP: Speak → Stream(keepCallAlive) with playAudio → Speak after the app closes → BYE; hangup URL once', async () => {
  const peer = await TestSipPeer.start();
  try {
    const call = await peer.call({ host: '127.0.0.1', port: sip.port }, { user: '5550200' });
    assert.equal(await call.final, 200);
    const answeredAt = performance.now();
    void call.sendAudio(new Uint8Array(0)); // silence keeps the RTP inactivity timer quiet
    const before = app.connections.length;
    await until(
      () =>
        app.connections.length > before && app.connections.at(-1)!.messages.some((m) => m.event === 'start'),
      'stream start',
      15000,
    );
    const conn = app.connections.at(-1)!;
    // The app plays 2 s of speech, marks it, and closes its socket when it has been played.
    const reply = speechMulaw.subarray(8000, 8000 * 3);
    conn.socket.send(
      JSON.stringify({
        event: 'playAudio',
        media: {
          contentType: 'audio/x-mulaw',
          sampleRate: 8000,
          payload: Buffer.from(reply).toString('base64'),
        },
      }),
    );
    conn.socket.send(
      JSON.stringify({ event: 'checkpoint', streamId: conn.messages[0]!.start.streamId, name: 'reply' }),
    );
    await until(() => conn.messages.some((m) => m.event === 'playedStream'), 'checkpoint played', 10000);
    const closedAt = performance.now();
    conn.socket.close();
    assert.equal(await call.ended, 'bye-from-server');
    const callMs = call.byeAt! - answeredAt;

    // The caller heard: prompt 1, then the app's audio (correlation ≥ 0.99), then prompt 2 — the
    // second prompt only after the stream ended.
    const audio = call.received.filter((p) => p.payloadType === 0);
    const pcm = g711Decode('mulaw', Buffer.concat(audio.map((p) => p.payload)));
    const ref = g711Decode('mulaw', reply);
    const r = bestLagCorrelation(ref, pcm, pcm.length - ref.length);
    assert.ok(r.correlation >= 0.99, `playAudio correlation ${r.correlation.toFixed(4)}`);
    // The engine's latency histograms saw this call: caller RTP → WS frames, playAudio → RTP.
    assert.ok(runtime.latency.captureToWs.count > 50, `${runtime.latency.captureToWs.count} frames timed`);
    assert.ok(runtime.latency.playToRtp.count >= 1);
    assert.ok(runtime.latency.playToRtp.max < 100, `playAudio→RTP max ${runtime.latency.playToRtp.max} ms`);
    const prompt2 = await runtime.speech.synthesize(
      'Goodbye now.',
      { language: 'en-US', voice: 'MAN' },
      8000,
    );
    const p2 = bestLagCorrelation(prompt2, pcm, pcm.length - prompt2.length);
    assert.ok(p2.correlation >= 0.95, `second prompt found (correlation ${p2.correlation.toFixed(4)})`);
    const p2FirstPacket = audio[Math.floor(p2.lag / 160)]!;
    assert.ok(p2FirstPacket.at >= closedAt, 'second prompt arrives only after the stream ended');
    assert.ok(p2.lag > r.lag + ref.length, 'second prompt after the app audio');
    const prompt1 = await runtime.speech.synthesize(
      'Welcome to the flow test.',
      { language: 'en-US', voice: 'WOMAN' },
      8000,
    );
    const p1 = bestLagCorrelation(prompt1, pcm, r.lag);
    assert.ok(
      p1.correlation >= 0.95 && p1.lag < r.lag,
      `first prompt before the app audio (${p1.correlation.toFixed(4)})`,
    );
    // RTP headers: one SSRC, consecutive sequence numbers, timestamps +160 per packet.
    for (let i = 1; i < audio.length; i++) {
      assert.equal(audio[i]!.ssrc, audio[0]!.ssrc);
      assert.equal((audio[i]!.sequenceNumber - audio[i - 1]!.sequenceNumber) & 0xffff, 1);
      assert.equal((audio[i]!.timestamp - audio[i - 1]!.timestamp) >>> 0, 160);
    }
    assert.equal(audio[0]!.marker, true);

    await until(() => answers.requests.some((q) => q.path === '/flow-hangup'), 'hangup URL called');
    await new Promise((res) => setTimeout(res, 300));
    const hangups = answers.requests.filter((q) => q.path === '/flow-hangup');
    assert.equal(hangups.length, 1);
    // Duration is whole seconds from answer to hangup on the server's clock; the peer sees the same
    // interval within a few ms, so the reported value must be its rounding (±0.55 s covers the edge).
    const duration = Number(hangups[0]!.params.get('Duration'));
    assert.ok(
      Math.abs(duration - callMs / 1000) <= 0.55,
      `Duration ${duration} for a ${callMs.toFixed(0)} ms call`,
    );
    call.close();
  } finally {
    peer.close();
  }
});

test('sipp: CANCEL before answer gets 200 for the CANCEL and 487 for the INVITE; no call is created', async () => {
  const calls = sip.stats.answered;
  const result = await runSipp({
    scenario: join(SCENARIOS, 'uac-cancel.xml'),
    target: `127.0.0.1:${sip.port}`,
    service: '5550400',
  });
  assert.equal(result.exitCode, 0, `sipp failed:\n${result.errors}\n${result.stderr}`);
  assert.equal(sip.stats.cancelled >= 1, true);
  await new Promise((r) => setTimeout(r, 3200)); // the slow answer URL returns after the CANCEL
  assert.equal(sip.stats.answered, calls, 'a cancelled INVITE is never answered');
});

test('sipp: <Hangup> makes the server send BYE (UDP and TCP)', async () => {
  for (const transport of ['u1', 't1'] as const) {
    const t0 = Date.now();
    const result = await runSipp({
      scenario: join(SCENARIOS, 'uac-recv-bye.xml'),
      target: `127.0.0.1:${sip.port}`,
      service: '5550300',
      transport,
    });
    assert.equal(result.exitCode, 0, `sipp (${transport}) failed:\n${result.errors}\n${result.stderr}`);
    assert.ok(Date.now() - t0 >= 1000, '<Wait length="1"> ran before the BYE');
  }
});

test('sipp: OPTIONS is answered 200 with an Allow header listing INVITE', async () => {
  const result = await runSipp({
    scenario: join(SCENARIOS, 'uac-options.xml'),
    target: `127.0.0.1:${sip.port}`,
    service: 'probe',
  });
  assert.equal(result.exitCode, 0, `sipp failed:\n${result.errors}\n${result.stderr}`);
});

test('outbound: a number dialled through the trunk reaches sipp (UAS, RTP echo); the answer URL runs with Direction=outbound', async () => {
  const uas = runSipp({
    builtin: 'uas',
    localPort: outboundTrunkPort,
    args: ['-rtp_echo'],
    timeoutMs: 20000,
  });
  await new Promise((r) => setTimeout(r, 300)); // let sipp bind
  const before = app.connections.length;
  const callId = crypto.randomUUID();
  await sip.dial({
    to: '+15557654321',
    from: '15550001111',
    callId,
    app: {
      answer: { url: answers.url('/outbound'), method: 'POST' },
      hangup: { url: answers.url('/outbound-hangup'), method: 'POST' },
    },
  });
  const result = await uas;
  assert.equal(result.exitCode, 0, `sipp uas failed:\n${result.errors}\n${result.stderr}`);
  const fetched = answers.requests.find(
    (r) => r.path === '/outbound' && r.params.get('CallUUID') === callId,
  )!;
  assert.equal(fetched.params.get('Direction'), 'outbound');
  assert.equal(fetched.params.get('To'), '+15557654321');
  assert.equal(fetched.params.get('CallStatus'), 'in-progress');
  // sipp echoes our RTP: the stream's inbound track carries the greeting we spoke to it.
  await until(
    () => app.connections.length > before && app.connections.at(-1)!.closed,
    'outbound stream ended',
    10000,
  );
  const media = app.connections.at(-1)!.messages.filter((m) => m.event === 'media');
  const loud = media.filter((m) =>
    Buffer.from(m.media.payload as string, 'base64').some((b) => (b & 0x7f) < 0x60),
  );
  assert.ok(loud.length >= 25, `echoed speech reached the stream (${loud.length} loud frames)`);
  await until(() => answers.requests.some((r) => r.path === '/outbound-hangup'), 'hangup URL');
  assert.equal(
    answers.requests.find((r) => r.path === '/outbound-hangup')!.params.get('HangupCause'),
    'NORMAL_CLEARING',
  );
});
