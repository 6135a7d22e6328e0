/**
 * High-quality streaming sample-rate conversion: the Speex resampler (SpeexDSP, BSD) compiled to
 * WASM (`@echogarden/speex-resampler-wasm`). One {@link StreamingResampler} per direction per
 * stream keeps filter state across frames, so 20 ms frames join without edge artefacts.
 */
import createSpeexModule from '@echogarden/speex-resampler-wasm';

interface SpeexModule {
  HEAP16: Int16Array;
  HEAP32: Int32Array;
  HEAPU32: Uint32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _speex_resampler_init(
    channels: number,
    inRate: number,
    outRate: number,
    quality: number,
    errPtr: number,
  ): number;
  _speex_resampler_process_int(
    st: number,
    channel: number,
    inPtr: number,
    inLenPtr: number,
    outPtr: number,
    outLenPtr: number,
  ): number;
  _speex_resampler_skip_zeros(st: number): number;
  _speex_resampler_get_input_latency(st: number): number;
  _speex_resampler_destroy(st: number): void;
}

const speex = (await (createSpeexModule as unknown as () => Promise<SpeexModule>)()) as SpeexModule;

/** Speex quality 0–10; 7 is transparent for speech at 8/16 kHz at modest cost. */
export const RESAMPLER_QUALITY = 7;

/** Error thrown when the WASM resampler cannot be created or fails (code `resampler_failed`). */
export class ResamplerError extends Error {
  readonly code = 'resampler_failed';
}

/**
 * A streaming mono 16-bit resampler.
 *
 * `process` takes any number of input samples and returns the output produced so far. By default
 * the filter delay (`latencySamples` input samples) is removed at the start (`skip_zeros`), so
 * output sample n lines up with input time n·inRate/outRate. `flush` pushes the held tail out. Call `destroy` when
 * done (WASM memory is not garbage-collected).
 */
export class StreamingResampler {
  readonly inRate: number;
  readonly outRate: number;
  /** Input samples held inside the filter (the resampler's delay). */
  readonly latencySamples: number;
  private st: number;
  private inPtr = 0;
  private outPtr = 0;
  private capacity = 0;
  private readonly lenPtrs: number;

  /**
   * @param inRate input sample rate, Hz
   * @param outRate output sample rate, Hz
   * @param options.skipZeros drop the filter delay from the start of the output (default true).
   *   With `false` every input block yields exactly `length × outRate/inRate` samples (for
   *   integer ratios), the first ones being the filter's delay — what fixed 20 ms framing needs.
   * @throws ResamplerError if the rates are not positive integers or WASM init fails
   */
  constructor(inRate: number, outRate: number, options: { skipZeros?: boolean; quality?: number } = {}) {
    const quality = options.quality ?? RESAMPLER_QUALITY;
    if (!Number.isInteger(inRate) || !Number.isInteger(outRate) || inRate <= 0 || outRate <= 0) {
      throw new ResamplerError(`invalid resampler rates ${inRate} -> ${outRate}`);
    }
    this.inRate = inRate;
    this.outRate = outRate;
    this.lenPtrs = speex._malloc(12);
    const errPtr = this.lenPtrs + 8;
    this.st = speex._speex_resampler_init(1, inRate, outRate, quality, errPtr);
    if (this.st === 0 || speex.HEAP32[errPtr >> 2] !== 0) {
      speex._free(this.lenPtrs);
      throw new ResamplerError(`speex_resampler_init failed (${speex.HEAP32[errPtr >> 2]})`);
    }
    if (options.skipZeros ?? true) speex._speex_resampler_skip_zeros(this.st);
    this.latencySamples = speex._speex_resampler_get_input_latency(this.st);
  }

  private ensure(inSamples: number): number {
    const outSamples = Math.ceil((inSamples * this.outRate) / this.inRate) + 64;
    if (inSamples > this.capacity || outSamples > this.capacity) {
      if (this.inPtr) speex._free(this.inPtr);
      if (this.outPtr) speex._free(this.outPtr);
      this.capacity = Math.max(inSamples, outSamples, 1024);
      this.inPtr = speex._malloc(this.capacity * 2);
      this.outPtr = speex._malloc(this.capacity * 2);
    }
    return outSamples;
  }

  /**
   * Resamples a block.
   * @returns a new array of output samples (length ≈ input × outRate/inRate)
   * @throws ResamplerError after `destroy` or on a WASM failure
   */
  process(input: Int16Array): Int16Array {
    if (this.st === 0) throw new ResamplerError('resampler used after destroy');
    if (input.length === 0) return new Int16Array(0);
    const outCap = this.ensure(input.length);
    speex.HEAP16.set(input, this.inPtr >> 1);
    const inLen = this.lenPtrs >> 2;
    const outLen = inLen + 1;
    speex.HEAPU32[inLen] = input.length;
    speex.HEAPU32[outLen] = outCap;
    const err = speex._speex_resampler_process_int(
      this.st,
      0,
      this.inPtr,
      this.lenPtrs,
      this.outPtr,
      this.lenPtrs + 4,
    );
    if (err !== 0) throw new ResamplerError(`speex_resampler_process_int failed (${err})`);
    const produced = speex.HEAPU32[outLen]!;
    return speex.HEAP16.slice(this.outPtr >> 1, (this.outPtr >> 1) + produced);
  }

  /** Pushes the held tail out (feeds `latencySamples` zeros); the stream may continue after. */
  flush(): Int16Array {
    const zeros = new Int16Array(this.latencySamples);
    const out = this.process(zeros);
    const wanted = Math.round((this.latencySamples * this.outRate) / this.inRate);
    return out.subarray(0, Math.min(out.length, wanted));
  }

  /** Frees the WASM state. Idempotent. */
  destroy(): void {
    if (this.st === 0) return;
    speex._speex_resampler_destroy(this.st);
    if (this.inPtr) speex._free(this.inPtr);
    if (this.outPtr) speex._free(this.outPtr);
    speex._free(this.lenPtrs);
    this.st = 0;
  }
}

/** One-shot resampling of a whole buffer (tail flushed). */
export function resampleOnce(input: Int16Array, inRate: number, outRate: number): Int16Array {
  if (inRate === outRate) return input.slice();
  const r = new StreamingResampler(inRate, outRate);
  try {
    const a = r.process(input);
    const b = r.flush();
    const out = new Int16Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  } finally {
    r.destroy();
  }
}
