/**
 * Mains-hum remover for the noise-suppression stage (issue 5): RNNoise barely touches low tonal
 * noise, so before it we look for persistent narrowband peaks at the mains frequencies (50 or 60 Hz
 * and their harmonics up to 500 Hz) and notch exactly those out.
 *
 * Detection: every {@link WINDOW_MS} of input, the Goertzel power at each candidate frequency is
 * compared with the power 10 Hz either side; a candidate at least 12 dB above its neighbours, with an
 * amplitude of at least {@link MIN_AMPLITUDE}, is hum. (Speech harmonics glide with the pitch, so they
 * do not stay on an exact mains harmonic for a whole window.) A notch is switched on at the first
 * detection and off after 3 windows without one. Notches: RBJ biquads with a constant 4 Hz bandwidth,
 * so a clean signal loses almost nothing and, without hum, no filter runs at all.
 * Pure: PCM in, PCM out, no timers; latency: none (IIR, sample by sample).
 */

/** Analysis window, ms (0.32 s ≈ 3 Hz Goertzel resolution). */
export const WINDOW_MS = 320;
/** Smallest hum amplitude (16-bit full scale 32768) worth a notch. */
export const MIN_AMPLITUDE = 20;
const PEAK_RATIO = 10 ** (12 / 10);
const NEIGHBOUR_HZ = 10;
const BANDWIDTH_HZ = 4;
const MISSES_TO_DISABLE = 3;

interface Notch {
  hz: number;
  on: boolean;
  misses: number;
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
  x1: number;
  x2: number;
  y1: number;
  y2: number;
}

/** Goertzel power of `f` Hz over `x` (the standard second-order recurrence; units: squared sample amplitude). */
export function goertzelPower(x: Float32Array, f: number, sampleRate: number): number {
  const coeff = 2 * Math.cos((2 * Math.PI * f) / sampleRate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s = x[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

/** Detects and notches mains hum in PCM at one sample rate. */
export class HumFilter {
  private readonly notches: Notch[] = [];
  private readonly window: Float32Array;
  private filled = 0;
  /** Frequencies (Hz) being notched now. */
  get activeHz(): number[] {
    return this.notches.filter((n) => n.on).map((n) => n.hz);
  }

  constructor(private readonly sampleRate: number) {
    this.window = new Float32Array(Math.round((sampleRate * WINDOW_MS) / 1000));
    const seen = new Set<number>();
    for (const f0 of [50, 60]) {
      for (let hz = f0; hz <= 500; hz += f0) {
        if (seen.has(hz)) continue;
        seen.add(hz);
        const w0 = (2 * Math.PI * hz) / sampleRate;
        const alpha = Math.sin(w0) / (2 * (hz / BANDWIDTH_HZ));
        const a0 = 1 + alpha;
        this.notches.push({
          hz,
          on: false,
          misses: 0,
          b0: 1 / a0,
          b1: (-2 * Math.cos(w0)) / a0,
          b2: 1 / a0,
          a1: (-2 * Math.cos(w0)) / a0,
          a2: (1 - alpha) / a0,
          x1: 0,
          x2: 0,
          y1: 0,
          y2: 0,
        });
      }
    }
  }

  /** Filters `pcm` in place (analysing it on the way) and returns it. */
  process(pcm: Int16Array): Int16Array {
    for (let i = 0; i < pcm.length; i++) {
      this.window[this.filled++] = pcm[i]!;
      if (this.filled === this.window.length) {
        this.analyse();
        this.filled = 0;
      }
    }
    for (const n of this.notches) {
      if (!n.on) continue;
      for (let i = 0; i < pcm.length; i++) {
        const x = pcm[i]!;
        const y = n.b0 * x + n.b1 * n.x1 + n.b2 * n.x2 - n.a1 * n.y1 - n.a2 * n.y2;
        n.x2 = n.x1;
        n.x1 = x;
        n.y2 = n.y1;
        n.y1 = y;
        pcm[i] = y > 32767 ? 32767 : y < -32768 ? -32768 : Math.round(y);
      }
    }
    return pcm;
  }

  private analyse(): void {
    const x = this.window;
    const minPower = ((MIN_AMPLITUDE * x.length) / 2) ** 2;
    for (const n of this.notches) {
      const p = goertzelPower(x, n.hz, this.sampleRate);
      const side =
        (goertzelPower(x, n.hz - NEIGHBOUR_HZ, this.sampleRate) +
          goertzelPower(x, n.hz + NEIGHBOUR_HZ, this.sampleRate)) /
        2;
      const hum = p >= minPower && p >= PEAK_RATIO * side;
      if (hum) {
        if (!n.on) {
          n.on = true;
          n.x1 = n.x2 = n.y1 = n.y2 = 0;
        }
        n.misses = 0;
      } else if (n.on && ++n.misses >= MISSES_TO_DISABLE) {
        n.on = false;
      }
    }
  }
}
