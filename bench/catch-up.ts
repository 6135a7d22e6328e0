/**
 * Microbenchmark of playout catch-up's pitch search (`npm run bench:catch-up`): the speech fixture
 * (8 kHz) played through {@link accelerateFrame} as a stream that is always late, with and without
 * the period hint carried from frame to frame. Prints µs per accelerated frame, how many frames lost
 * a period, the mean period removed, and how well the removed stretch matched (normalised
 * correlation of the crossfaded segments: 1 = seamless) — the hint must not cost quality.
 */
import { readFileSync } from 'node:fs';
import { readWav } from '../packages/server/src/media/wav.js';
import { accelerateFrame, type AccelerateOptions } from '../packages/server/src/media/time-scale.js';
import { correlation } from '../packages/server/src/testing/audio-compare.js';

const speech = readWav(readFileSync(new URL('../fixtures/speech-8k.wav', import.meta.url))).samples;
const N = 160;
const base: AccelerateOptions = { minPeriod: 20, maxPeriod: 120, maxRemove: 160, maxSilenceRemove: N };

function run(withHint: boolean, rounds: number) {
  const out = new Int16Array(N);
  let frames = 0;
  let voiced = 0;
  let removedSum = 0;
  let matchSum = 0;
  let searches = 0;
  let nearHint = 0;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    const hint = { period: 0 };
    for (let at = 0; at + N + 160 <= speech.length;) {
      const input = speech.subarray(at, at + N + 160);
      let searched = false;
      const before = hint.period;
      const removed = accelerateFrame(input, out, {
        ...base,
        maySearch: () => (searched = true),
        ...(withHint ? { periodHint: hint } : {}),
      });
      frames++;
      if (searched) searches++;
      if (searched && before > 0 && Math.abs(hint.period - before) <= 2) nearHint++;
      if (searched && removed > 0) {
        voiced++;
        removedSum += removed;
        if (r === 0)
          matchSum += correlation(input.subarray(0, removed), input.subarray(removed, 2 * removed));
      }
      at += N + removed;
    }
  }
  const ms = performance.now() - t0;
  return {
    usPerFrame: +((1000 * ms) / frames).toFixed(2),
    framesPerRound: frames / rounds,
    searchesPerRound: searches / rounds,
    nearLastPeriodPerRound: nearHint / rounds,
    voicedPerRound: voiced / rounds,
    meanPeriod: +(removedSum / Math.max(1, voiced)).toFixed(1),
    meanMatch: +(matchSum / Math.max(1, voiced / rounds)).toFixed(4),
  };
}

run(true, 20); // warm-up
run(false, 20);
const rounds = Number(process.argv[2] ?? 200);
const full = run(false, rounds);
const hinted = run(true, rounds);
console.log(JSON.stringify({ fullSearch: full, periodHint: hinted }, null, 2));
console.log(
  `SUMMARY catch-up pitch search: ${full.usPerFrame} → ${hinted.usPerFrame} µs per frame with the period hint ` +
    `(voiced frames ${full.voicedPerRound} → ${hinted.voicedPerRound} per pass, mean period ${full.meanPeriod} → ${hinted.meanPeriod} samples, ` +
    `match ${full.meanMatch} → ${hinted.meanMatch})`,
);
