import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import alawmulaw from 'alawmulaw';
import wavefile from 'wavefile';
import {
  PCMU,
  PCMA,
  PlaybackDecoder,
  PlayoutQueue,
  StreamEncoder,
  StreamingResampler,
  g711Decode,
  g711Encode,
  l16ToPcm,
  pcmToL16,
  readWav,
  writeWav,
  resampleOnce,
  WavError,
} from '../src/index.js';
import { correlation } from '../src/testing/index.js';

test('G.711 tables agree with alawmulaw on every code and every 16-bit sample', () => {
  const all = new Int16Array(65536).map((_, i) => i - 32768);
  assert.deepEqual(g711Encode('mulaw', all), alawmulaw.mulaw.encode(all));
  assert.deepEqual(g711Encode('alaw', all), alawmulaw.alaw.encode(all));
  const codes = new Uint8Array(256).map((_, i) => i);
  assert.deepEqual(g711Decode('mulaw', codes), alawmulaw.mulaw.decode(codes));
  assert.deepEqual(g711Decode('alaw', codes), alawmulaw.alaw.decode(codes));
  assert.equal(g711Encode('mulaw', new Int16Array([0]))[0], 0xff);
});

test('L16 is little-endian; odd byte offsets are copied correctly', () => {
  const bytes = Buffer.from([0x01, 0x02, 0xff, 0x7f, 0x00, 0x80]);
  assert.deepEqual([...l16ToPcm(bytes)], [0x0201, 32767, -32768]);
  const odd = Buffer.concat([Buffer.from([9]), bytes]).subarray(1);
  assert.deepEqual([...l16ToPcm(odd)], [0x0201, 32767, -32768]);
  assert.deepEqual(pcmToL16(new Int16Array([0x0201, -2])), Buffer.from([0x01, 0x02, 0xfe, 0xff]));
});

test('stream encoder: μ-law→μ-law is the same bytes (no copy); A-law call → μ-law stream transcodes; 16 kHz frames are 640 B', () => {
  const frame = g711Encode(
    'mulaw',
    new Int16Array(160).map((_, i) => i * 50),
  );
  const same = new StreamEncoder(PCMU, 'audio/x-mulaw;rate=8000');
  assert.equal(same.encode(frame), frame);
  const alawFrame = g711Encode(
    'alaw',
    new Int16Array(160).map((_, i) => i * 50),
  );
  const trans = new StreamEncoder(PCMA, 'audio/x-mulaw;rate=8000');
  const out = trans.encode(alawFrame);
  assert.ok(correlation(g711Decode('mulaw', out), g711Decode('alaw', alawFrame)) > 0.999);
  const up = new StreamEncoder(PCMU, 'audio/x-l16;rate=16000');
  for (let i = 0; i < 10; i++) assert.equal(up.encode(frame).length, 640);
  up.close();
});

test('resampler: 8→16→8 kHz round trip of a 1 kHz tone keeps its shape; sizes follow the ratio', () => {
  const x = new Int16Array(8000).map((_, i) => Math.round(10000 * Math.sin((2 * Math.PI * 1000 * i) / 8000)));
  const up = resampleOnce(x, 8000, 16000);
  assert.equal(up.length, 16000);
  const back = resampleOnce(up, 16000, 8000);
  assert.equal(back.length, 8000);
  assert.ok(correlation(x.subarray(100, 7900), back.subarray(100, 7900)) > 0.999);
  const r = new StreamingResampler(8000, 16000, { skipZeros: false });
  for (let i = 0; i < 20; i++) assert.equal(r.process(x.subarray(i * 160, i * 160 + 160)).length, 320);
  r.destroy();
  assert.throws(() => r.process(x), /after destroy/);
  assert.throws(() => new StreamingResampler(0, 8000), /invalid resampler rates/);
});

test('WAV: stereo is downmixed, μ-law WAV decoded, streaming sizes (0xFFFFFFFF) read to the end, garbage rejected', () => {
  const mono = writeWav(new Int16Array([100, -100, 200, -200]), 8000);
  assert.deepEqual([...readWav(mono).samples], [100, -100, 200, -200]);
  // stereo: L=1000, R=3000 → 2000
  const st = Buffer.from(mono);
  const stereo = Buffer.alloc(44 + 8);
  st.copy(stereo, 0, 0, 44);
  stereo.writeUInt16LE(2, 22);
  stereo.writeUInt32LE(8000 * 4, 28);
  stereo.writeUInt16LE(4, 32);
  stereo.writeUInt32LE(8, 40);
  stereo.writeUInt32LE(44, 4);
  [1000, 3000, -1000, -3000].forEach((v, i) => stereo.writeInt16LE(v, 44 + i * 2));
  assert.deepEqual([...readWav(stereo).samples], [2000, -2000]);
  const streaming = Buffer.from(mono);
  streaming.writeUInt32LE(0xffffffff, 40);
  assert.deepEqual([...readWav(streaming).samples], [100, -100, 200, -200]);
  const muWav = new wavefile.WaveFile();
  muWav.fromScratch(1, 8000, '8m', new Uint8Array([0xff, 0x00, 0x80]));
  assert.deepEqual([...readWav(muWav.toBuffer()).samples], [0, -32124, 32124]);
  assert.throws(() => readWav(Buffer.from('RIFF\0\0\0\0WAVEjunk')), WavError);
  assert.throws(() => readWav(Buffer.from('hello')), WavError);
});

test('playback decoder: raw in the stream format, μ-law at 8 kHz, odd L16 trimmed with a warning, bad WAV rejected', () => {
  const d = new PlaybackDecoder(8000, 'audio/x-l16;rate=8000');
  const r = d.decode({
    event: 'playAudio',
    encoding: 'raw',
    sampleRate: null,
    payload: Buffer.from([1, 0, 2, 0, 9]),
  });
  assert.deepEqual([...r.samples], [1, 2]);
  assert.equal(r.warnings.length, 1);
  const mu = d.decode({
    event: 'playAudio',
    encoding: 'audio/x-mulaw',
    sampleRate: null,
    payload: Buffer.from([0xff, 0x00]),
  });
  assert.deepEqual([...mu.samples], [0, -32124]);
  assert.throws(
    () =>
      d.decode({
        event: 'playAudio',
        encoding: 'wav',
        sampleRate: null,
        payload: Buffer.from('RIFF\0\0\0\0WAVEjunk'),
      }),
    /playAudio/,
  );
  const absurd = writeWav(new Int16Array(100), 8000);
  absurd.writeUInt32LE(4_000_000_000, 24); // header sample rate 4 GHz
  assert.throws(
    () => d.decode({ event: 'playAudio', encoding: 'wav', sampleRate: null, payload: absurd }),
    /sample rate 4000000000/,
  );
  d.close();
});

test('playout queue: a played frame is released at once, drained or not (no played audio kept alive)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const q = new PlayoutQueue({ frameSamples: 160, capSamples: 8000 * 40 });
  const out = new Int16Array(160);
  /** Queues a fresh frame of `value`s; only a WeakRef to it is kept here. */
  const enqueue = (value: number): WeakRef<Int16Array> => {
    const samples = new Int16Array(160).fill(value);
    q.enqueueAudio(samples);
    return new WeakRef(samples);
  };
  /** Collects garbage (WeakRef targets are kept until the current job ends) and counts survivors. */
  const reachable = async (refs: WeakRef<Int16Array>[]): Promise<number> => {
    await new Promise((r) => setImmediate(r));
    gc();
    return refs.filter((w) => w.deref() !== undefined).length;
  };

  // A prompt sent ahead (the queue never drains): 200 frames queued, 150 played.
  const prompt = Array.from({ length: 200 }, (_, i) => enqueue(i + 1));
  for (let i = 0; i < 150; i++) q.pull(out);
  assert.equal(out[0], 150, 'the 150th frame played');
  assert.equal(await reachable(prompt.slice(0, 150)), 0, 'played prompt frames released');
  assert.equal(await reachable(prompt.slice(150)), 50, 'queued frames kept');

  // A real-time app (the queue drains every tick): one frame in, one out, 100 times.
  for (let i = 0; i < 50; i++) q.pull(out);
  const live: WeakRef<Int16Array>[] = [];
  for (let i = 0; i < 100; i++) {
    live.push(enqueue(i + 1));
    q.pull(out);
  }
  assert.equal(out[0], 100);
  assert.equal(await reachable(live), 0, 'played live frames released');
});

test('playout queue: cap, checkpoints in order across frames, clear reports discarded checkpoints', () => {
  const q = new PlayoutQueue({ frameSamples: 4, capSamples: 10 });
  assert.equal(q.enqueueCheckpoint('empty'), true, 'empty queue: reached at once');
  assert.deepEqual(q.enqueueAudio(new Int16Array([1, 2, 3, 4, 5, 6])), { accepted: 6, dropped: 0 });
  assert.equal(q.enqueueCheckpoint('six'), false);
  assert.deepEqual(q.enqueueAudio(new Int16Array([7, 8, 9, 10, 11, 12])), { accepted: 4, dropped: 2 });
  q.enqueueCheckpoint('ten');
  const f = new Int16Array(4);
  let r = q.pull(f);
  assert.deepEqual([...f], [1, 2, 3, 4]);
  assert.deepEqual(r.checkpoints, []);
  f.fill(0);
  r = q.pull(f);
  assert.deepEqual([...f], [5, 6, 7, 8]);
  assert.deepEqual(r.checkpoints, ['six']);
  f.fill(0);
  r = q.pull(f);
  assert.deepEqual([...f], [9, 10, 0, 0]);
  assert.deepEqual(r.checkpoints, ['ten']);
  assert.equal(r.audioSamples, 2);
  q.enqueueAudio(new Int16Array([1, 1]));
  q.enqueueCheckpoint('gone');
  assert.deepEqual(q.clear(), { droppedSamples: 2, droppedCheckpoints: ['gone'] });
  assert.equal(q.isEmpty, true);
});
