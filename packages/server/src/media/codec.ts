/**
 * Call codecs and the conversions between a call's audio and a stream's format
 * (protocol.md §3.2 "Encodings", §3.4 `playAudio`).
 */
import {
  PLAY_SAMPLE_RATE_MAX,
  PLAY_SAMPLE_RATE_MIN,
  mediaFormatOf,
  type MediaFormat,
  type PlayAudioMessage,
  type StreamContentType,
} from '@callstream/protocol';
import { g711Decode, g711Encode } from './g711.js';
import { l16ToPcm, pcmToL16 } from './l16.js';
import { StreamingResampler } from './resample.js';
import { decodeWavData, hasWavHeader, readWav, WavError, type WavFormat } from './wav.js';

/** The codec a call leg speaks: G.711 over RTP, or linear PCM (host order) for in-process legs. */
export interface CallCodec {
  /** RTP payload name: `PCMU` (μ-law), `PCMA` (A-law) or `L16` (linear, host byte order). */
  readonly name: 'PCMU' | 'PCMA' | 'L16';
  /** Hz. */
  readonly sampleRate: 8000 | 16000;
}

/** G.711 μ-law at 8 kHz: the default call codec. */
export const PCMU: CallCodec = { name: 'PCMU', sampleRate: 8000 };
/** G.711 A-law at 8 kHz. */
export const PCMA: CallCodec = { name: 'PCMA', sampleRate: 8000 };

/** Samples in one 20 ms frame at `sampleRate` Hz. */
export function samplesPerFrame(sampleRate: number): number {
  return sampleRate / 50;
}

/** Decodes one call frame to 16-bit PCM at the call rate. */
export function decodeCallAudio(codec: CallCodec, bytes: Uint8Array): Int16Array {
  switch (codec.name) {
    case 'PCMU':
      return g711Decode('mulaw', bytes);
    case 'PCMA':
      return g711Decode('alaw', bytes);
    case 'L16':
      return l16ToPcm(bytes);
  }
}

/** Encodes 16-bit PCM at the call rate to the call codec. */
export function encodeCallAudio(codec: CallCodec, pcm: Int16Array): Uint8Array {
  switch (codec.name) {
    case 'PCMU':
      return g711Encode('mulaw', pcm);
    case 'PCMA':
      return g711Encode('alaw', pcm);
    case 'L16':
      return pcmToL16(pcm);
  }
}

/**
 * Converts a call's frames (one track) to a stream's content type, frame by frame.
 * μ-law call → μ-law stream is the identity: the same bytes, no copy (design.md).
 * Rate changes use a streaming resampler without `skip_zeros`, so every 20 ms in gives exactly
 * 20 ms out (the first frame starts with the filter delay).
 */
export class StreamEncoder {
  readonly format: MediaFormat;
  private readonly passthrough: boolean;
  private resampler: StreamingResampler | null = null;

  constructor(
    private readonly codec: CallCodec,
    contentType: StreamContentType,
  ) {
    this.format = mediaFormatOf(contentType);
    this.passthrough = codec.name === 'PCMU' && this.format.encoding === 'audio/x-mulaw';
    if (!this.passthrough && codec.sampleRate !== this.format.sampleRate) {
      this.resampler = new StreamingResampler(codec.sampleRate, this.format.sampleRate, { skipZeros: false });
    }
  }

  /**
   * Converts one call frame.
   * @param encoded the frame in the call codec
   * @param pcm the same frame decoded, if the caller already has it (saves a decode)
   * @returns bytes in the stream format (may share memory with the input)
   */
  encode(encoded: Uint8Array, pcm?: Int16Array): Uint8Array {
    if (this.passthrough) return encoded;
    let samples = pcm ?? decodeCallAudio(this.codec, encoded);
    if (this.resampler) samples = this.resampler.process(samples);
    return this.format.encoding === 'audio/x-mulaw' ? g711Encode('mulaw', samples) : pcmToL16(samples);
  }

  /**
   * Encodes one frame of PCM at the call rate (used when a stage, e.g. noise suppression, changed
   * the samples: no pass-through then).
   */
  encodePcm(pcm: Int16Array): Uint8Array {
    const samples = this.resampler ? this.resampler.process(pcm) : pcm;
    return this.format.encoding === 'audio/x-mulaw' ? g711Encode('mulaw', samples) : pcmToL16(samples);
  }

  /** Frees resampler memory. */
  close(): void {
    this.resampler?.destroy();
    this.resampler = null;
  }
}

/** Result of {@link PlaybackDecoder.decode}. */
export interface DecodedPlayback {
  /** PCM at the call rate. */
  samples: Int16Array;
  /** Non-fatal oddities (odd-length L16 trimmed, …) for the debug log. */
  warnings: string[];
}

/** Thrown when a `playAudio` payload cannot be decoded (debug-log `invalid_message`). */
export class PlaybackFormatError extends Error {
  readonly code = 'invalid_message';
}

/**
 * Decodes `playAudio` messages of one stream to PCM at the call rate (protocol.md §3.4, §6 #8–#9).
 * Each message is interpreted on its own (formats may change between messages); resampling keeps
 * filter state while the input rate stays the same, and {@link flush} (called at a checkpoint)
 * pushes the filter's tail into the queue so a checkpoint follows all of its audio.
 */
export class PlaybackDecoder {
  private readonly streamFormat: MediaFormat;
  private resampler: StreamingResampler | null = null;
  private lastWavFormat: WavFormat | null = null;

  constructor(
    private readonly callRate: number,
    streamContentType: StreamContentType,
  ) {
    this.streamFormat = mediaFormatOf(streamContentType);
  }

  /**
   * @throws PlaybackFormatError for an unsupported or corrupt payload
   */
  decode(message: PlayAudioMessage): DecodedPlayback {
    const warnings: string[] = [];
    let pcm: Int16Array;
    let rate: number;
    const enc = message.encoding ?? 'raw';
    const bytes = message.payload;
    if (enc === 'wav' || (enc === 'raw' && hasWavHeader(bytes))) {
      if (hasWavHeader(bytes)) {
        try {
          const wav = readWav(bytes);
          this.lastWavFormat = wav.format;
          pcm = wav.samples;
          rate = message.sampleRate ?? wav.sampleRate;
        } catch (e) {
          throw new PlaybackFormatError(`playAudio: ${(e as WavError).message}`);
        }
      } else if (this.lastWavFormat) {
        try {
          pcm = decodeWavData(bytes, this.lastWavFormat);
        } catch (e) {
          throw new PlaybackFormatError(`playAudio: ${(e as Error).message}`);
        }
        rate = message.sampleRate ?? this.lastWavFormat.sampleRate;
      } else {
        ({ pcm, rate } = this.decodeRaw(this.streamFormat.encoding, bytes, message.sampleRate, warnings));
      }
    } else {
      const encoding = enc === 'raw' ? this.streamFormat.encoding : enc;
      ({ pcm, rate } = this.decodeRaw(encoding, bytes, message.sampleRate, warnings));
    }
    if (!Number.isInteger(rate) || rate < PLAY_SAMPLE_RATE_MIN || rate > PLAY_SAMPLE_RATE_MAX) {
      throw new PlaybackFormatError(
        `playAudio: sample rate ${rate} outside ${PLAY_SAMPLE_RATE_MIN}-${PLAY_SAMPLE_RATE_MAX}`,
      );
    }
    return { samples: this.toCallRate(pcm, rate), warnings };
  }

  private decodeRaw(
    encoding: 'audio/x-mulaw' | 'audio/x-l16',
    bytes: Buffer,
    sampleRate: number | null,
    warnings: string[],
  ): { pcm: Int16Array; rate: number } {
    if (encoding === 'audio/x-mulaw') {
      return { pcm: g711Decode('mulaw', bytes), rate: sampleRate ?? 8000 };
    }
    if (bytes.length % 2 === 1) warnings.push('odd-length L16 payload: last byte dropped');
    return { pcm: l16ToPcm(bytes), rate: sampleRate ?? this.streamFormat.sampleRate };
  }

  private toCallRate(pcm: Int16Array, rate: number): Int16Array {
    // A rate change ends the previous resampled run: its held tail goes out first.
    const tail = this.resampler && this.resampler.inRate !== rate ? this.flush() : null;
    let out = pcm;
    if (rate !== this.callRate) {
      this.resampler ??= new StreamingResampler(rate, this.callRate);
      out = this.resampler.process(pcm);
    }
    if (!tail || tail.length === 0) return out;
    const joined = new Int16Array(tail.length + out.length);
    joined.set(tail);
    joined.set(out, tail.length);
    return joined;
  }

  /** Returns the resampler's held tail (empty when not resampling) and restarts it. */
  flush(): Int16Array {
    if (!this.resampler) return new Int16Array(0);
    const tail = this.resampler.flush();
    this.dropResampler();
    return tail;
  }

  /** Forgets held audio (after `clearAudio`). */
  reset(): void {
    this.dropResampler();
  }

  private dropResampler(): void {
    this.resampler?.destroy();
    this.resampler = null;
  }

  /** Frees WASM memory. */
  close(): void {
    this.dropResampler();
  }
}
