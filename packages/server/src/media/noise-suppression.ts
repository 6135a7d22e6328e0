/**
 * Noise suppression for a stream's inbound track (`noiseCancellation`, protocol.md §1.2; issue 5).
 *
 * Pipeline per 20 ms call frame: PCM at the call rate → mains-hum notches (only where persistent
 * 50/60 Hz-harmonic peaks are detected, `hum-filter.ts`) → Speex resampler to 48 kHz → two 10 ms
 * RNNoise frames (`@jitsi/rnnoise-wasm`) → level-dependent mix and voice-activity gate → Speex
 * resampler back to the call rate. Frames stay 20 ms: integer rate ratios (8k/16k ↔ 48k) make every
 * 20 ms in give exactly 20 ms out, so chunks and timestamps are untouched.
 *
 * Added latency: RNNoise's own 10 ms frame (its overlap window) plus the two resamplers' filter
 * delays; the stage holds no other audio ({@link NoiseSuppressor.latencyMs}).
 *
 * Level → strength (monotonic: every parameter suppresses more as the level rises), t = (L − 60)/40:
 *
 * | level | wet mix (denoised share) | residual exponent β | gate floor | VAD threshold |
 * |---|---|---|---|---|
 * | 60 (light) | 50 % | 0 | −6 dB | 0.20 |
 * | 70 (balanced) | 79 % | 0.03 | −14.5 dB | 0.33 |
 * | 85 (default) | 97.4 % | 0.20 | −27 dB | 0.51 |
 * | 100 (aggressive) | 100 % | 0.50 | −40 dB | 0.70 |
 *
 * wet = 1 − 0.5·(1 − t)³ (the unprocessed share, which carries the noise straight through, falls
 * from −6 dB at 60 to −14 dB at 70, −32 dB at 85 and nothing at 100); β = 0.5·t²; floor =
 * −(6 + 34·t) dB; threshold = 0.2 + 0.5·t.
 *
 * Residual weighting: each 10 ms frame's gain target is lowered by β·10·log10(E_out/E_in) dB, where
 * E_in and E_out are the energies of RNNoise's (aligned) input and output for that frame — a frame
 * RNNoise found to be mostly noise is pushed further down, a frame it left intact (speech) passes.
 * It trades a little speech fidelity for suppression, which is why it grows with the level (README:
 * distortion figures). The voice-activity gate opens at once when RNNoise's voice probability
 * reaches the threshold and closes after a 200 ms hangover; the gain moves at most 3 dB per 10 ms
 * frame so it never clicks.
 */
import createRNNWasmModuleSync from '@jitsi/rnnoise-wasm/dist/rnnoise-sync.js';
import { StreamingResampler } from './resample.js';
import { HumFilter } from './hum-filter.js';

interface RnnoiseModule {
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _rnnoise_create(model?: number): number;
  _rnnoise_destroy(state: number): void;
  _rnnoise_process_frame(state: number, out: number, input: number): number;
}

let rnnoise: RnnoiseModule | null = null;
function module(): RnnoiseModule {
  rnnoise ??= createRNNWasmModuleSync() as RnnoiseModule;
  return rnnoise;
}

/** RNNoise's rate, Hz, and frame, samples (10 ms). */
export const MODEL_RATE = 48000;
export const MODEL_FRAME = 480;

/** Frames by which RNNoise's output lags its input (measured with speech: 960 samples at 48 kHz). */
export const MODEL_DELAY_FRAMES = 2;

/**
 * Speex quality of the stage's own resamplers: 5 keeps the 0–4 kHz band intact for the model and
 * halves the filter delay of quality 7 (8 kHz: 10 ms for both directions instead of 16 ms).
 */
export const NS_RESAMPLER_QUALITY = 5;

/** Level bounds and default (protocol.md §1.2). */
export const NOISE_LEVEL_MIN = 60;
export const NOISE_LEVEL_MAX = 100;
export const NOISE_LEVEL_DEFAULT = 85;

/** The strength parameters a level maps to (see the module comment). */
export interface SuppressionStrength {
  /** Share of the denoised signal in the output, 0.5–1. */
  wet: number;
  /**
   * Residual exponent β, 0–0.5: the frame gain target is lowered by β·10·log10(E_out/E_in) dB
   * (RNNoise's output ÷ input energy over the 10 ms frame; 0 = off).
   */
  residualExponent: number;
  /** Gain applied when no voice is detected, dB (negative). */
  floorDb: number;
  /** RNNoise voice probability at or above which the gate opens, 0–1. */
  vadThreshold: number;
}

/**
 * Maps `noiseCancellationLevel` (60–100; clamped) to strength parameters.
 * Monotonic: a higher level never suppresses less.
 */
export function strengthForLevel(level: number): SuppressionStrength {
  const l = Math.min(NOISE_LEVEL_MAX, Math.max(NOISE_LEVEL_MIN, level));
  const t = (l - NOISE_LEVEL_MIN) / (NOISE_LEVEL_MAX - NOISE_LEVEL_MIN);
  return {
    wet: 1 - 0.5 * (1 - t) ** 3,
    residualExponent: 0.5 * t * t,
    floorDb: -(6 + 34 * t),
    vadThreshold: 0.2 + 0.5 * t,
  };
}

const HANGOVER_FRAMES = 20; // 200 ms of 10 ms frames
const MAX_STEP_DB = 3;
/** Lowest gain the residual weighting may ask for, dB. */
const MIN_GAIN_DB = -60;

/**
 * One stream's noise suppressor. Not thread-safe; one per stream. Call {@link close} to free WASM
 * memory.
 */
export class NoiseSuppressor {
  readonly strength: SuppressionStrength;
  private readonly up: StreamingResampler;
  private readonly down: StreamingResampler;
  private readonly m: RnnoiseModule;
  private state: number;
  private readonly bufPtr: number;
  private gainDb = 0;
  private hangover = 0;
  /** Mean voice probability of the last processed frame (for the debug log and tests). */
  lastVad = 0;
  /** Mains-hum notches in front of RNNoise (which leaves low tonal noise alone). */
  readonly hum: HumFilter;

  /**
   * @param sampleRate the call rate, Hz (8000 or 16000; any divisor of 48000 works)
   * @param level `noiseCancellationLevel`, 60–100
   * @throws Error if the rate does not divide 48 kHz (frames would not stay 20 ms)
   */
  constructor(
    readonly sampleRate: number,
    readonly level: number = NOISE_LEVEL_DEFAULT,
  ) {
    if (MODEL_RATE % sampleRate !== 0)
      throw new Error(`noise suppression needs a rate dividing 48000, got ${sampleRate}`);
    this.strength = strengthForLevel(level);
    this.hum = new HumFilter(sampleRate);
    this.up = new StreamingResampler(sampleRate, MODEL_RATE, {
      skipZeros: false,
      quality: NS_RESAMPLER_QUALITY,
    });
    this.down = new StreamingResampler(MODEL_RATE, sampleRate, {
      skipZeros: false,
      quality: NS_RESAMPLER_QUALITY,
    });
    this.m = module();
    this.state = this.m._rnnoise_create();
    this.bufPtr = this.m._malloc(MODEL_FRAME * 4);
  }

  /**
   * Delay the stage adds, ms: RNNoise's own delay (two 10 ms frames) plus both resamplers' filter
   * delays. The stage buffers nothing else.
   */
  get latencyMs(): number {
    return (
      MODEL_DELAY_FRAMES * 10 +
      (this.up.latencySamples / this.sampleRate) * 1000 +
      (this.down.latencySamples / MODEL_RATE) * 1000
    );
  }

  /**
   * Suppresses noise in one frame.
   * @param pcm 20 ms (or any multiple of 10 ms) at `sampleRate`
   * @returns the same number of samples, denoised (a new array)
   */
  process(pcm: Int16Array): Int16Array {
    if (this.state === 0) throw new Error('noise suppressor used after close');
    const hi = this.up.process(this.hum.process(pcm.slice()));
    const out48 = new Int16Array(hi.length);
    const { wet, floorDb, vadThreshold, residualExponent } = this.strength;
    const base = this.bufPtr >> 2;
    let vadSum = 0;
    let frames = 0;
    for (let off = 0; off + MODEL_FRAME <= hi.length; off += MODEL_FRAME) {
      let heap = this.m.HEAPF32;
      const current = this.dryDelay.shift()!; // oldest dry frame: output, then reused for this input
      for (let i = 0; i < MODEL_FRAME; i++) heap[base + i] = hi[off + i]!;
      const vad = this.m._rnnoise_process_frame(this.state, this.bufPtr, this.bufPtr);
      heap = this.m.HEAPF32; // re-read: the view is replaced if WASM memory ever grows
      vadSum += vad;
      frames++;
      // voice-activity gate with hangover and bounded slew
      if (vad >= vadThreshold) this.hangover = HANGOVER_FRAMES;
      else if (this.hangover > 0) this.hangover--;
      let target = this.hangover > 0 ? 0 : floorDb;
      if (residualExponent > 0) {
        // `current` is the dry frame aligned with RNNoise's output (both lag the input by 20 ms)
        let eIn = 1e-3;
        let eOut = 1e-3;
        for (let i = 0; i < MODEL_FRAME; i++) {
          eIn += current[i]! * current[i]!;
          eOut += heap[base + i]! * heap[base + i]!;
        }
        const residualDb = 10 * Math.log10(Math.min(1, eOut / eIn));
        target = Math.max(MIN_GAIN_DB, target + residualExponent * residualDb);
      }
      this.gainDb += Math.max(-MAX_STEP_DB, Math.min(MAX_STEP_DB, target - this.gainDb));
      const gain = Math.pow(10, this.gainDb / 20);
      // RNNoise's output lags its input by MODEL_DELAY_FRAMES frames (measured: 20 ms); the dry
      // signal is delayed as much so the mix does not comb-filter.
      for (let i = 0; i < MODEL_FRAME; i++) {
        const v = gain * (wet * heap[base + i]! + (1 - wet) * current[i]!);
        out48[off + i] = v > 32767 ? 32767 : v < -32768 ? -32768 : Math.round(v);
        current[i] = hi[off + i]!;
      }
      this.dryDelay.push(current);
    }
    this.lastVad = frames ? vadSum / frames : 0;
    return this.down.process(out48);
  }

  private readonly dryDelay = Array.from({ length: MODEL_DELAY_FRAMES }, () => new Float32Array(MODEL_FRAME));

  /** Frees WASM memory. Idempotent. */
  close(): void {
    if (this.state === 0) return;
    this.m._rnnoise_destroy(this.state);
    this.m._free(this.bufPtr);
    this.state = 0;
    this.up.destroy();
    this.down.destroy();
  }
}
