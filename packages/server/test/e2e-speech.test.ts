/**
 * Real speech end to end, in real time: the committed espeak-ng sample is played by the simulated
 * caller into a bidirectional stream of each contentType; an SDK-built app records what arrives
 * and echoes it; the caller records the echo.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { StreamSession } from '@callstream/sdk';
import {
  createRuntime,
  g711Decode,
  g711Encode,
  l16ToPcm,
  parseConfig,
  readWav,
  runSimulatedCall,
  type FileCallerLeg,
  type Runtime,
  type SimulatedCallResult,
} from '../src/index.js';
import { bestLagCorrelation, segmentedEchoCorrelation, correlation } from '../src/testing/index.js';

const WAV = readFileSync(new URL('../../../fixtures/speech-8k.wav', import.meta.url));
const SOX_16K = readWav(
  readFileSync(new URL('../../../fixtures/speech-8k-sox-16k.wav', import.meta.url)),
).samples;
const speech = readWav(WAV).samples;
const frames = Math.ceil(speech.length / 160);
const padded = new Int16Array(frames * 160);
padded.set(speech);
/** What the caller really sends: the WAV as μ-law. */
const callerMulaw = g711Encode('mulaw', padded);
const callerPcm = g711Decode('mulaw', callerMulaw);

interface AppRecord {
  payloads: Map<number, Buffer>; // media.chunk → inbound payload
  chunkAt: Map<number, number>; // media.timestamp → chunk
  starts: number;
}
let wss: WebSocketServer;
let runtime: Runtime;
const records = new Map<string, AppRecord>(); // by path

before(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', r));
  wss.on('connection', (socket, req) => {
    const rec: AppRecord = { payloads: new Map(), chunkAt: new Map(), starts: 0 };
    records.set(req.url ?? '', rec);
    const session = new StreamSession(socket);
    session.on('start', () => rec.starts++);
    session.on('media', (e) => {
      const bytes = Buffer.from(e.media.payload, 'base64');
      rec.payloads.set(e.media.chunk, bytes);
      rec.chunkAt.set(Number(e.media.timestamp), e.media.chunk);
      session.playAudio(bytes); // echo in the stream's own format
    });
  });
  runtime = createRuntime(parseConfig({}), { logger: pino({ level: 'silent' }) });
});
after(async () => {
  await runtime.close();
  await new Promise<void>((r) => wss.close(() => r()));
});

function url(path: string): string {
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}${path}`;
}

async function call(
  path: string,
  contentType: string,
): Promise<{ result: SimulatedCallResult; leg: FileCallerLeg }> {
  let leg: FileCallerLeg | undefined;
  const result = await runSimulatedCall(runtime, {
    wav: WAV,
    streamUrl: url(path),
    attributes: { bidirectional: 'true', contentType },
    tailMs: 600,
    onCall: (c) => (leg = c.leg),
  });
  return { result, leg: leg! };
}

/**
 * The app's received payloads for the caller's audio, in order: the chunk stamped with the caller's
 * first frame's capture time, then consecutive chunks (chunks never skip, §3.2).
 */
function receivedFrames(rec: AppRecord, firstFrameMs: number): Buffer[] {
  const first = rec.chunkAt.get(firstFrameMs);
  assert.ok(first !== undefined, `no media stamped ${firstFrameMs}`);
  const out: Buffer[] = [];
  for (let i = 0; i < frames; i++) {
    const p = rec.payloads.get(first + i);
    assert.ok(p, `chunk ${first + i} missing at the app`);
    out.push(p);
  }
  return out;
}

function assertEcho(result: SimulatedCallResult): void {
  // Per 1 s piece: the echo's delay may grow by a frame mid-call when a stall of this shared machine
  // bunches frames (the playout FIFO then keeps the extra depth), but every piece must be intact.
  const { worst, lags } = segmentedEchoCorrelation(callerPcm, result.reply, 4000);
  assert.ok(lags.length >= 3, 'speech pieces found');
  assert.ok(
    worst >= 0.99,
    `echo in reply.wav: worst 1 s piece correlates ${worst.toFixed(4)} (lags ${lags.join(', ')})`,
  );
}

test('real speech, three content types at once: bit-exact μ-law and L16 8k, L16 16k ≥ 0.99 vs sox, echo ≥ 0.99', async () => {
  const [mu, l8, l16] = await Promise.all([
    call('/mulaw', 'audio/x-mulaw;rate=8000'),
    call('/l16-8k', 'audio/x-l16;rate=8000'),
    call('/l16-16k', 'audio/x-l16;rate=16000'),
  ]);

  // μ-law stream of a μ-law call: the caller's bytes, bit-exact, 160 B per frame.
  {
    const rec = records.get('/mulaw')!;
    const got = receivedFrames(rec, mu.leg.firstFrameMs!);
    assert.ok(got.every((f) => f.length === 160));
    assert.deepEqual(Buffer.concat(got), Buffer.from(callerMulaw));
    assert.equal(mu.result.status, 'stopped');
    assert.equal(mu.result.endReason, 'call_hangup');
    assertEcho(mu.result);
  }
  // L16 8 kHz: the decoded μ-law samples, bit-exact, little-endian, 320 B per frame.
  {
    const rec = records.get('/l16-8k')!;
    const got = receivedFrames(rec, l8.leg.firstFrameMs!);
    assert.ok(got.every((f) => f.length === 320));
    const samples = l16ToPcm(Buffer.concat(got));
    assert.deepEqual(samples, callerPcm);
    assertEcho(l8.result);
  }
  // L16 16 kHz: resampled; compared with sox's independent resampling of the same speech.
  {
    const rec = records.get('/l16-16k')!;
    const got = receivedFrames(rec, l16.leg.firstFrameMs!);
    assert.ok(got.every((f) => f.length === 640));
    const samples = l16ToPcm(Buffer.concat(got));
    const { correlation: c, lag } = bestLagCorrelation(SOX_16K, samples, 400);
    assert.ok(c >= 0.99, `16 kHz stream correlates ${c.toFixed(4)} (lag ${lag}) with sox's resampling`);
    assert.ok(lag < 400, 'resampler delay is small');
    assertEcho(l16.result);
  }
  // Sanity: the comparison can fail — a shifted signal does not pass.
  assert.ok(correlation(callerPcm, callerPcm.subarray(37)) < 0.9);
  for (const r of [mu, l8, l16]) {
    assert.equal(r.result.stats.sent.start, 1);
    assert.ok((r.result.stats.received.playAudio ?? 0) >= frames);
  }
});
