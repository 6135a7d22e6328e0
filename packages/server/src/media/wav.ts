/**
 * WAV (RIFF/WAVE) reading and writing via `wavefile`.
 *
 * Reading accepts PCM 8/16/24/32-bit, IEEE float, μ-law, A-law and WAVE_FORMAT_EXTENSIBLE PCM,
 * any channel count (downmixed to mono by averaging), and streaming headers whose data size is 0 or
 * 0xFFFFFFFF ("to the end of the bytes"), as protocol.md §3.4 requires of `wav` payloads.
 */
import wavefile from 'wavefile';

const { WaveFile } = wavefile;

/** Decoded mono audio. */
export interface MonoAudio {
  /** Sample rate, Hz. */
  sampleRate: number;
  /** 16-bit samples, mono. */
  samples: Int16Array;
}

/** A WAV header's format, remembered to decode later header-less `wav` payloads (§3.4). */
export interface WavFormat {
  /** 1 PCM, 3 float, 6 A-law, 7 μ-law (after resolving EXTENSIBLE). */
  audioFormat: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
}

/** Error for unreadable WAV data (code `wav_unsupported`). */
export class WavError extends Error {
  readonly code = 'wav_unsupported';
}

/** True if the bytes start with `RIFF....WAVE`. */
export function hasWavHeader(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 12 &&
    bytes[0] === 0x52 &&
    bytes[1] === 0x49 &&
    bytes[2] === 0x46 &&
    bytes[3] === 0x46 &&
    bytes[8] === 0x57 &&
    bytes[9] === 0x41 &&
    bytes[10] === 0x56 &&
    bytes[11] === 0x45
  );
}

/** Rewrites a streaming data-chunk size (0 or 0xFFFFFFFF) to the bytes actually present. */
function fixStreamingSizes(bytes: Uint8Array): Buffer {
  const buf = Buffer.from(bytes);
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = buf.toString('latin1', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    if (id === 'data') {
      const available = buf.length - off - 8;
      if (size === 0 || size === 0xffffffff || size > available)
        buf.writeUInt32LE(available - (available % 2), off + 4);
      buf.writeUInt32LE(buf.length - 8, 4);
      return buf;
    }
    off += 8 + size + (size & 1);
  }
  return buf;
}

/**
 * Reads a WAV file to mono 16-bit PCM.
 * @returns audio plus the header's format
 * @throws WavError for data that is not a supported WAV
 */
export function readWav(bytes: Uint8Array): MonoAudio & { format: WavFormat } {
  if (!hasWavHeader(bytes)) throw new WavError('not a RIFF/WAVE file');
  let wav: InstanceType<typeof WaveFile>;
  try {
    wav = new WaveFile(fixStreamingSizes(bytes));
  } catch (e) {
    throw new WavError(`unreadable WAV: ${(e as Error).message}`);
  }
  const fmt = wav.fmt as {
    audioFormat: number;
    numChannels: number;
    sampleRate: number;
    bitsPerSample: number;
  };
  const format: WavFormat = {
    audioFormat: fmt.audioFormat === 0xfffe ? 1 : fmt.audioFormat,
    channels: fmt.numChannels,
    sampleRate: fmt.sampleRate,
    bitsPerSample: fmt.bitsPerSample,
  };
  if (format.channels < 1 || format.sampleRate < 1) throw new WavError('WAV header has no channels or rate');
  try {
    if (format.audioFormat === 7) wav.fromMuLaw();
    else if (format.audioFormat === 6) wav.fromALaw();
    else if (format.audioFormat === 1 || format.audioFormat === 3) {
      if (format.bitsPerSample !== 16 || format.audioFormat === 3) wav.toBitDepth('16');
    } else throw new WavError(`unsupported WAV audio format ${format.audioFormat}`);
  } catch (e) {
    if (e instanceof WavError) throw e;
    throw new WavError(`cannot convert WAV: ${(e as Error).message}`);
  }
  const interleaved = wav.getSamples(true, Int16Array) as unknown as Int16Array;
  return { sampleRate: format.sampleRate, samples: downmix(interleaved, format.channels), format };
}

/** Averages interleaved channels to mono. */
export function downmix(interleaved: Int16Array, channels: number): Int16Array {
  if (channels === 1) return interleaved;
  const n = Math.floor(interleaved.length / channels);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += interleaved[i * channels + c]!;
    out[i] = Math.round(sum / channels);
  }
  return out;
}

/**
 * Decodes header-less bytes in a remembered WAV format (protocol.md §3.4: a `wav` payload without
 * header continues the last header's format).
 * @throws WavError for an unsupported format
 */
export function decodeWavData(bytes: Uint8Array, format: WavFormat): Int16Array {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + bytes.length, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(format.audioFormat, 20);
  header.writeUInt16LE(format.channels, 22);
  header.writeUInt32LE(format.sampleRate, 24);
  const blockAlign = (format.channels * format.bitsPerSample) / 8;
  header.writeUInt32LE(format.sampleRate * blockAlign, 28);
  header.writeUInt16LE(blockAlign, 32);
  header.writeUInt16LE(format.bitsPerSample, 34);
  header.write('data', 36, 'latin1');
  const usable = bytes.length - (bytes.length % Math.max(1, blockAlign));
  header.writeUInt32LE(usable, 40);
  return readWav(Buffer.concat([header, Buffer.from(bytes.buffer, bytes.byteOffset, usable)])).samples;
}

/** Writes mono 16-bit PCM as a canonical 44-byte-header WAV file. */
export function writeWav(samples: Int16Array, sampleRate: number): Buffer {
  const wav = new WaveFile();
  wav.fromScratch(1, sampleRate, '16', samples);
  return Buffer.from(wav.toBuffer());
}
