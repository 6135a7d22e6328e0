/**
 * Audio formats of a stream (protocol.md §1.2, §3.2).
 *
 * A stream's `contentType` is one of three canonical strings. Matching ignores case and spaces
 * around `;`; records, callbacks and events always use the canonical spelling.
 */

/** Canonical stream content types (protocol.md §1.2). */
export const STREAM_CONTENT_TYPES = [
  'audio/x-l16;rate=8000',
  'audio/x-l16;rate=16000',
  'audio/x-mulaw;rate=8000',
] as const;

/** One of the three canonical stream content types. */
export type StreamContentType = (typeof STREAM_CONTENT_TYPES)[number];

/** Default stream content type (protocol.md §1.2). */
export const DEFAULT_CONTENT_TYPE: StreamContentType = 'audio/x-l16;rate=8000';

/** Stream encodings as they appear in `start.mediaFormat.encoding` (no `;rate=`). */
export type StreamEncoding = 'audio/x-l16' | 'audio/x-mulaw';

/** Encoding and sample rate (Hz) of a stream content type. */
export interface MediaFormat {
  readonly encoding: StreamEncoding;
  /** Sample rate in Hz: 8000 or 16000. */
  readonly sampleRate: 8000 | 16000;
}

/**
 * Parses a stream content type leniently (case, spaces around `;`).
 * @returns the canonical spelling, or `null` if it is not one of the three accepted values.
 */
export function parseStreamContentType(value: string): StreamContentType | null {
  const normalized = value
    .toLowerCase()
    .replace(/\s*;\s*/g, ';')
    .trim();
  return (STREAM_CONTENT_TYPES as readonly string[]).includes(normalized)
    ? (normalized as StreamContentType)
    : null;
}

/** Splits a canonical content type into encoding and sample rate. */
export function mediaFormatOf(contentType: StreamContentType): MediaFormat {
  switch (contentType) {
    case 'audio/x-l16;rate=8000':
      return { encoding: 'audio/x-l16', sampleRate: 8000 };
    case 'audio/x-l16;rate=16000':
      return { encoding: 'audio/x-l16', sampleRate: 16000 };
    case 'audio/x-mulaw;rate=8000':
      return { encoding: 'audio/x-mulaw', sampleRate: 8000 };
  }
}

/**
 * Bytes in one 20 ms frame of a stream format (protocol.md §3.2):
 * 160 B μ-law 8 kHz, 320 B L16 8 kHz, 640 B L16 16 kHz.
 */
export function frameBytes(format: MediaFormat): number {
  const samples = (format.sampleRate / 1000) * 20;
  return format.encoding === 'audio/x-mulaw' ? samples : samples * 2;
}
