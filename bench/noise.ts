/**
 * Noise-cancellation cost benchmark: `npm run bench:noise [-- --streams N --seconds S]`.
 *
 * Runs the inbound path of N streams (μ-law call frame → stream media payload, L16 8 kHz and μ-law)
 * over S seconds of noisy speech, as fast as possible, with and without noise cancellation, and
 * prints CPU milliseconds per stream-second (process.cpuUsage of this process), the real-time
 * factor, the stage's added latency, and RSS growth per noise-suppressed stream.
 *
 * `npm run bench:noise -- --quality` prints the quality table of the README instead: for each
 * committed fixture (`fixtures/noise/speech-<noise>-<snr>db.wav`) the segmental-SNR gain at levels
 * 60/85/100 and the change of speech-frame SDR against the clean speech at 85 and 100.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { segmentalSnrDb, speechActivity, speechSdrDb, suppressAligned } from '@callstream/server/testing';
import {
  NoiseSuppressor,
  PCMU,
  StreamEncoder,
  decodeCallAudio,
  g711Encode,
  readWav,
} from '@callstream/server';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
    quality: { type: 'boolean', default: false },
  },
});
const fixture = (name: string) =>
  readWav(readFileSync(new URL(`../fixtures/${name}`, import.meta.url))).samples;

if (values.quality) {
  const clean = fixture('speech-8k.wav');
  const mask = speechActivity(clean);
  console.log('| noise | SNR in | gain @60 | gain @85 | gain @100 | SDR change @85 | SDR change @100 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const noise of ['white', 'babble', 'talkers', 'hum']) {
    const cols: string[][] = [[], [], [], [], []];
    for (const snr of [0, 5, 10]) {
      const noisy = fixture(`noise/speech-${noise}-${snr}db.wav`);
      const out = new Map([60, 85, 100].map((l) => [l, suppressAligned(noisy, l)]));
      [60, 85, 100].forEach((l, i) =>
        cols[i]!.push((segmentalSnrDb(out.get(l)!, mask) - segmentalSnrDb(noisy, mask)).toFixed(1)),
      );
      [85, 100].forEach((l, i) =>
        cols[3 + i]!.push(
          (speechSdrDb(out.get(l)!, clean, mask) - speechSdrDb(noisy, clean, mask)).toFixed(1),
        ),
      );
    }
    console.log(`| ${noise} | 0 / 5 / 10 dB | ${cols.map((c) => c.join(' / ')).join(' | ')} |`);
  }
  process.exit(0);
}
const streams = Number(values.streams);
const seconds = Number(values.seconds);
const speech = fixture('noise/speech-white-5db.wav');
const mulaw = g711Encode('mulaw', speech.subarray(0, Math.floor(speech.length / 160) * 160));
const framesPerStream = seconds * 50;

function run(withNoise: boolean, contentType: 'audio/x-mulaw;rate=8000' | 'audio/x-l16;rate=8000') {
  const encoders = Array.from({ length: streams }, () => new StreamEncoder(PCMU, contentType));
  const suppressors = withNoise ? Array.from({ length: streams }, () => new NoiseSuppressor(8000, 85)) : [];
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  let bytes = 0;
  for (let f = 0; f < framesPerStream; f++) {
    const off = (f * 160) % mulaw.length;
    const frame = mulaw.subarray(off, off + 160);
    for (let s = 0; s < streams; s++) {
      const out = withNoise
        ? encoders[s]!.encodePcm(suppressors[s]!.process(decodeCallAudio(PCMU, frame)))
        : encoders[s]!.encode(frame);
      bytes += Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('base64').length;
    }
  }
  const wall = performance.now() - w0;
  const cpu = process.cpuUsage(t0);
  const latency = suppressors[0]?.latencyMs ?? 0;
  for (const s of suppressors) s.close();
  for (const e of encoders) e.close();
  const streamSeconds = streams * seconds;
  return {
    contentType,
    noiseCancellation: withNoise,
    cpuMsPerStreamSecond: (cpu.user + cpu.system) / 1000 / streamSeconds,
    realTimeFactor: wall / 1000 / seconds,
    addedLatencyMs: latency,
    checksum: bytes,
  };
}

console.log(
  `noise-cancellation benchmark: ${streams} streams × ${seconds} s of 8 kHz μ-law speech in white noise (5 dB SNR)`,
);
// Memory: RSS growth for 200 suppressors created in a fresh process (WASM linear memory included;
// it grows in pages and is never returned, so this is measured once, first).
{
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const many = Array.from({ length: 200 }, () => new NoiseSuppressor(8000, 85));
  for (const s of many) s.process(new Int16Array(160)); // touch the state
  const rss1 = process.memoryUsage().rss;
  for (const s of many) s.close();
  console.log(
    `memory: ${((rss1 - rss0) / 1024 / 200).toFixed(0)} KiB RSS per noise-suppressed stream (200 created)`,
  );
}
const rows = [
  run(false, 'audio/x-mulaw;rate=8000'),
  run(true, 'audio/x-mulaw;rate=8000'),
  run(false, 'audio/x-l16;rate=8000'),
  run(true, 'audio/x-l16;rate=8000'),
];
for (const r of rows) {
  console.log(
    `${r.contentType.padEnd(24)} NC ${r.noiseCancellation ? 'on ' : 'off'}  CPU ${r.cpuMsPerStreamSecond.toFixed(3)} ms/stream-s` +
      `  (${(r.cpuMsPerStreamSecond / 10).toFixed(2)} % of a core per stream)  added latency ${r.addedLatencyMs} ms`,
  );
}
console.log(JSON.stringify({ streams, seconds, rows }));
