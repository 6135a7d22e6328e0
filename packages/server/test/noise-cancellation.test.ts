/**
 * Noise cancellation (issue 5; protocol.md §1.2): quality on committed noisy speech, level
 * monotonicity, clean speech untouched, and timing unchanged on a live stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { appMessages } from '@callstream/protocol';
import { g711Encode, readWav, strengthForLevel } from '../src/index.js';
import {
  TestWsApp,
  classEnergy,
  segmentalSnrDb,
  speechActivity,
  speechSdrDb,
  suppressAligned,
} from '../src/testing/index.js';
import { harness, toneMulaw, until } from './helpers.js';

const fixture = (name: string) =>
  readWav(readFileSync(new URL(`../../../fixtures/${name}`, import.meta.url))).samples;
const clean = fixture('speech-8k.wav');
const mask = speechActivity(clean);

function improvementDb(noisy: Int16Array, level: number): number {
  return segmentalSnrDb(suppressAligned(noisy, level), mask) - segmentalSnrDb(noisy, mask);
}

/** Segmental-SNR gains at levels 60, 85 and 100 on the committed `speech-<noise>-<snr>db.wav`. */
function gainsAt(noise: string, snr: number): [g60: number, g85: number, g100: number] {
  const noisy = fixture(`noise/speech-${noise}-${snr}db.wav`);
  return [60, 85, 100].map((l) => improvementDb(noisy, l)) as [number, number, number];
}

test('level → strength is monotonic: higher levels never suppress less', () => {
  let prev = strengthForLevel(60);
  for (let l = 61; l <= 100; l++) {
    const s = strengthForLevel(l);
    assert.ok(
      s.wet >= prev.wet &&
        s.residualExponent >= prev.residualExponent &&
        s.floorDb <= prev.floorDb &&
        s.vadThreshold >= prev.vadThreshold,
      `level ${l}`,
    );
    prev = s;
  }
  assert.deepEqual(strengthForLevel(85), {
    wet: 0.9736328125,
    residualExponent: 0.1953125,
    floorDb: -27.25,
    vadThreshold: 0.5125,
  });
  assert.deepEqual(strengthForLevel(60), { wet: 0.5, residualExponent: 0, floorDb: -6, vadThreshold: 0.2 });
});

test('white noise at 0, 5, 10 dB SNR: ≥ 10 dB segmental SNR gain at level 85, more at 100 than at 60', () => {
  for (const snr of [0, 5, 10]) {
    const [g60, g85, g100] = gainsAt('white', snr);
    assert.ok(g85 >= 10, `white ${snr} dB: ${g85.toFixed(1)} dB at 85`);
    assert.ok(
      g100 > g85 && g85 > g60,
      `white ${snr} dB: 60 ${g60.toFixed(1)} < 85 ${g85.toFixed(1)} < 100 ${g100.toFixed(1)}`,
    );
  }
});

test('hum (50 Hz mains + harmonics): ≥ 10 dB at level 85 at every SNR, more at 100 than at 60', () => {
  for (const snr of [0, 5, 10]) {
    const [g60, g85, g100] = gainsAt('hum', snr);
    assert.ok(g85 >= 10, `hum ${snr} dB: ${g85.toFixed(1)} dB at 85`);
    assert.ok(g100 > g60, `hum ${snr} dB: 100 ${g100.toFixed(1)} > 60 ${g60.toFixed(1)}`);
  }
});

test('babble (a crowd of 32 talkers): ≥ 10 dB at level 85 at every SNR, more at 100 than at 60', () => {
  for (const snr of [0, 5, 10]) {
    const [g60, g85, g100] = gainsAt('babble', snr);
    assert.ok(g85 >= 10, `babble ${snr} dB: ${g85.toFixed(1)} dB at 85`);
    assert.ok(
      g100 > g85 && g85 > g60,
      `babble ${snr} dB: 60 ${g60.toFixed(1)} < 85 ${g85.toFixed(1)} < 100 ${g100.toFixed(1)}`,
    );
  }
});

test('six competing talkers: gains measured, more at 100 than at 60 (below 10 dB: see README)', () => {
  for (const snr of [0, 5, 10]) {
    const [g60, g85, g100] = gainsAt('talkers', snr);
    assert.ok(g85 >= 3, `talkers ${snr} dB: ${g85.toFixed(1)} dB at 85`);
    assert.ok(g100 > g60, `talkers ${snr} dB: 100 ${g100.toFixed(1)} > 60 ${g60.toFixed(1)}`);
  }
});

test('speech is not traded away at the default level: speech-frame SDR never below the noisy input', () => {
  for (const noise of ['white', 'babble', 'talkers']) {
    for (const snr of [0, 5, 10]) {
      const noisy = fixture(`noise/speech-${noise}-${snr}db.wav`);
      const before = speechSdrDb(noisy, clean, mask);
      const after85 = speechSdrDb(suppressAligned(noisy, 85), clean, mask);
      assert.ok(after85 > before, `${noise} ${snr} dB: SDR ${before.toFixed(1)} → ${after85.toFixed(1)} dB`);
    }
  }
});

test('hum filter: notches exactly the mains harmonics present (60 Hz family), leaves a gliding tone alone', async () => {
  const { HumFilter } = await import('../src/media/hum-filter.js');
  const rate = 8000;
  const n = rate * 2;
  const hum = new Int16Array(n);
  for (let i = 0; i < n; i++)
    hum[i] = Math.round(
      1500 * Math.sin((2 * Math.PI * 60 * i) / rate) + 800 * Math.sin((2 * Math.PI * 180 * i) / rate),
    );
  const f = new HumFilter(rate);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i += 160) out.set(f.process(hum.slice(i, i + 160)), i);
  assert.deepEqual(
    f.activeHz.sort((a, b) => a - b),
    [60, 180],
  );
  const energy = (x: Int16Array, from: number) => x.subarray(from).reduce((e, v) => e + v * v, 0);
  const db = 10 * Math.log10(energy(out, n / 2) / energy(hum, n / 2)); // second second: notches on
  assert.ok(db < -30, `hum reduced by ${(-db).toFixed(1)} dB`);
  // A tone gliding 120 → 220 Hz (like a voice's pitch) never holds a mains harmonic: no notch.
  const glide = new Int16Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    phase += (2 * Math.PI * (120 + (100 * i) / n)) / rate;
    glide[i] = Math.round(3000 * Math.sin(phase));
  }
  const g = new HumFilter(rate);
  for (let i = 0; i < n; i += 160) g.process(glide.slice(i, i + 160));
  assert.deepEqual(g.activeHz, []);
});

test('clean speech passes with < 1 dB change in speech-segment energy at every level', () => {
  for (const level of [60, 85, 100]) {
    const y = suppressAligned(clean, level);
    const db = 10 * Math.log10(classEnergy(y, mask, 1) / classEnergy(clean, mask, 1));
    assert.ok(Math.abs(db) < 1, `level ${level}: ${db.toFixed(2)} dB`);
  }
});

test('on a live stream: 20 ms media, same chunks and timestamps as a plain stream, other streams and playout untouched', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const nc = h.startStream(app.url('/nc'), {
    bidirectional: 'true',
    contentType: 'audio/x-mulaw;rate=8000',
    noiseCancellation: 'true',
    noiseCancellationLevel: '150',
  });
  h.startStream(app.url('/plain'), { contentType: 'audio/x-mulaw;rate=8000' });
  const nc16 = h.startStream(app.url('/nc16'), {
    contentType: 'audio/x-l16;rate=16000',
    noiseCancellation: 'true',
  });
  await app.waitForStarts(3);
  assert.ok(
    nc.debugLog.list().some((e) => e.code === 'noise_cancellation' && /level 85/.test(e.message)),
    'out-of-range level: 85 used',
  );
  void nc16;
  const conn = (path: string) => app.connections.find((c) => c.request.url === path)!;
  const tone = toneMulaw(400, g711Encode);
  conn('/nc').socket.send(appMessages.playAudio('audio/x-mulaw', 8000, tone));
  await until(() => nc.playoutQueuedMs === 400, 'playback queued');
  const noisy = g711Encode('mulaw', fixture('noise/speech-white-0db.wav').subarray(8000, 8000 + 50 * 160));
  for (let i = 0; i < 50; i++) {
    h.leg.frame(noisy.subarray(i * 160, i * 160 + 160), h.clock.now());
    h.clock.advance(20);
  }
  await app.waitFor(
    () => ['/nc', '/plain', '/nc16'].every((p) => conn(p).messages.length === 51),
    'media on all streams',
  );
  const media = (p: string) => conn(p).messages.slice(1);
  const shape = (p: string) => media(p).map((m) => [m.media.chunk, m.media.timestamp]);
  assert.deepEqual(shape('/nc'), shape('/plain'));
  assert.deepEqual(shape('/nc16'), shape('/plain'));
  assert.ok(media('/nc').every((m) => Buffer.from(m.media.payload, 'base64').length === 160));
  assert.ok(media('/nc16').every((m) => Buffer.from(m.media.payload, 'base64').length === 640));
  const plain = Buffer.concat(media('/plain').map((m) => Buffer.from(m.media.payload, 'base64')));
  assert.deepEqual(plain, Buffer.from(noisy), 'a stream without noise cancellation gets the untouched audio');
  const denoised = Buffer.concat(media('/nc').map((m) => Buffer.from(m.media.payload, 'base64')));
  assert.notDeepEqual(denoised, plain);
  assert.deepEqual(
    Buffer.concat(h.leg.sent.slice(0, 20).map((s) => s.frame)),
    Buffer.from(tone),
    'playout untouched',
  );
  h.call.hangup();
  await app.close();
});
