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
import { TestWsApp, runSipp, writeRtpPcap, mulawToRtpPackets } from '../src/testing/index.js';
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
      req.on('end', () => {
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
const dir = mkdtempSync(join(tmpdir(), 'cs-sip-'));

before(async () => {
  app = await TestWsApp.start();
  answers = new AnswerServer(
    () =>
      `<Response><Stream keepCallAlive="true" contentType="audio/x-mulaw;rate=8000" extraHeaders="who=sipp">${app.url()}</Stream></Response>`,
  );
  await answers.start();
  const config = parseConfig({
    authToken: TOKEN,
    log: { level: 'silent' },
    sip: { host: '127.0.0.1', port: 0, rtpPortMin: 31000, rtpPortMax: 31999 },
    applications: [
      {
        name: 'bot',
        answerUrl: answers.url('/answer'),
        hangupUrl: answers.url('/hangup'),
        numbers: ['5550100'],
      },
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
    vars: { pcap, holdMs: 3600 },
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
