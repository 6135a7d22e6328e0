/**
 * Speech-quality measures for noise-suppression tests and benchmarks.
 *
 * The clean speech is known, so speech activity is taken from it: a 20 ms frame is *speech* when
 * its clean energy is within 30 dB of the loudest frame, *speech-free* when it is more than 60 dB
 * below it (or digital silence). Segmental SNR = mean energy of speech frames ÷ mean energy of
 * speech-free frames, in dB; its change from input to output measures suppression (noise removed
 * in pauses versus speech kept).
 */

import { NoiseSuppressor } from '../media/noise-suppression.js';

const FRAME = 160;

/** Per-frame class: 1 speech, 0 speech-free, -1 neither (transitions). */
export function speechActivity(clean: Int16Array, frame = FRAME): Int8Array {
  const n = Math.floor(clean.length / frame);
  const energy = new Float64Array(n);
  let max = 0;
  for (let f = 0; f < n; f++) {
    let e = 0;
    for (let i = f * frame; i < (f + 1) * frame; i++) e += clean[i]! * clean[i]!;
    energy[f] = e / frame;
    max = Math.max(max, energy[f]!);
  }
  const mask = new Int8Array(n);
  for (let f = 0; f < n; f++) {
    const db = 10 * Math.log10((energy[f]! + 1e-9) / max);
    mask[f] = db > -30 ? 1 : db < -60 ? 0 : -1;
  }
  return mask;
}

/** Mean energy per sample over the frames whose class is `cls`. */
export function classEnergy(signal: Int16Array, mask: Int8Array, cls: 0 | 1, frame = FRAME): number {
  let e = 0;
  let count = 0;
  for (let f = 0; f < mask.length; f++) {
    if (mask[f] !== cls) continue;
    for (let i = f * frame; i < (f + 1) * frame && i < signal.length; i++) e += signal[i]! * signal[i]!;
    count += frame;
  }
  return count ? e / count : 0;
}

/** Segmental SNR of `signal`, dB (speech frames ÷ speech-free frames). */
export function segmentalSnrDb(signal: Int16Array, mask: Int8Array): number {
  return 10 * Math.log10((classEnergy(signal, mask, 1) + 1e-9) / (classEnergy(signal, mask, 0) + 1e-9));
}

/**
 * Mixes noise into speech at `snrDb`: the noise is scaled so that the speech power over speech
 * frames ÷ the noise power equals the SNR. Saturates at 16 bits.
 */
export function mixAtSnr(clean: Int16Array, noise: Int16Array, snrDb: number): Int16Array {
  const mask = speechActivity(clean);
  const ps = classEnergy(clean, mask, 1);
  let pn = 0;
  const n = Math.min(clean.length, noise.length);
  for (let i = 0; i < n; i++) pn += noise[i]! * noise[i]!;
  pn /= n;
  const k = Math.sqrt(ps / (pn * Math.pow(10, snrDb / 10)));
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.round(clean[i]! + k * noise[i]!);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

/**
 * Speech-frame signal-to-distortion ratio of `signal` against the time-aligned `clean` speech, dB:
 * Σ clean² ÷ Σ (signal − clean)² over the speech frames of `mask`. Unlike {@link segmentalSnrDb},
 * which rewards any attenuation in pauses, this falls when speech itself is attenuated or distorted,
 * so the two together show what a suppressor trades.
 */
export function speechSdrDb(signal: Int16Array, clean: Int16Array, mask: Int8Array, frame = FRAME): number {
  let s = 0;
  let d = 0;
  for (let f = 0; f < mask.length; f++) {
    if (mask[f] !== 1) continue;
    for (let i = f * frame; i < (f + 1) * frame && i < signal.length && i < clean.length; i++) {
      s += clean[i]! * clean[i]!;
      d += (signal[i]! - clean[i]!) ** 2;
    }
  }
  return 10 * Math.log10((s + 1e-9) / (d + 1e-9));
}

/**
 * Runs 8 kHz `x` through a {@link NoiseSuppressor} at `level` in 20 ms frames, as a stream would,
 * and removes the stage's reported delay so the output lines up with the input sample for sample.
 * @throws Error if a frame comes back with a different length (the stage must keep 20 ms frames)
 */
export function suppressAligned(x: Int16Array, level: number): Int16Array {
  const ns = new NoiseSuppressor(8000, level);
  const delay = Math.round((ns.latencyMs * 8000) / 1000);
  const input = new Int16Array(Math.ceil((x.length + delay) / FRAME) * FRAME);
  input.set(x);
  const out = new Int16Array(input.length);
  try {
    for (let i = 0; i < input.length; i += FRAME) {
      const y = ns.process(input.subarray(i, i + FRAME));
      if (y.length !== FRAME) throw new Error(`20 ms in, ${y.length} samples out`);
      out.set(y, i);
    }
  } finally {
    ns.close();
  }
  return out.subarray(delay, delay + x.length);
}
