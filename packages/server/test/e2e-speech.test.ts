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
  // Catch-up off: this test checks the echo sample for sample; after a stall catch-up would
  // time-compress a few pitch periods (tested on its own in playout-catchup.test.ts).
  runtime = createRuntime(parseConfig({ stream: { playoutCatchUpMs: 0 } }), {
    logger: pino({ level: 'silent' }),
  });
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
  // Per 1 s piece: the echo's delay may grow by a few frames mid-call when a stall of this shared
  // machine skips ticks (the playout FIFO then keeps the extra depth: nothing is dropped), so the
  // piece a delay change falls inside is excused; every other piece must be intact, the delay may
  // only grow, and at most two changes are tolerated in a 7 s call.
  const e = segmentedEchoCorrelation(callerPcm, result.reply, 4000);
  const detail = `lags ${e.lags.join(', ')}; correlations ${e.correlations.map((c) => c.toFixed(3)).join(', ')}`;
  assert.ok(e.lags.length >= 3, 'speech pieces found');
  assert.ok(e.lagChanges <= 2, `echo delay changed ${e.lagChanges} times (${detail})`);
  assert.ok(
    e.lags.every((lag, i) => i === 0 || lag >= e.lags[i - 1]!),
    `echo delay never shrinks (${detail})`,
  );
  assert.ok(
    e.worstExcusingChanges >= 0.99,
    `echo in reply.wav: worst 1 s piece correlates ${e.worstExcusingChanges.toFixed(4)} (${detail})`,
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

test('echo check: a delay jump mid-call is excused once; damaged audio in a steady piece is not', () => {
  // The caller's speech delayed 480 samples, then 800 from 3.3 s on (a stall grew the queue).
  const jumpAt = 26_400;
  const echo = new Int16Array(callerPcm.length + 800);
  echo.set(callerPcm.subarray(0, jumpAt), 480);
  echo.set(callerPcm.subarray(jumpAt), jumpAt + 800);
  const ok = segmentedEchoCorrelation(callerPcm, echo, 4000);
  assert.equal(ok.lagChanges, 1);
  assert.ok(ok.worstExcusingChanges >= 0.99, `steady pieces intact: ${ok.correlations.join(', ')}`);

  // The same echo with 100 ms of one steady piece replaced by noise: caught.
  const damaged = echo.slice();
  const lastPiece = (Math.floor(callerPcm.length / 8000) - 1) * 8000; // after the jump: lag 800
  for (let i = 0; i < 800; i++) damaged[lastPiece + 800 + 2000 + i] = ((i * 7919) % 20000) - 10000;
  const bad = segmentedEchoCorrelation(callerPcm, damaged, 4000);
  assert.ok(bad.worstExcusingChanges < 0.99, `damage found: ${bad.worstExcusingChanges}`);
});
