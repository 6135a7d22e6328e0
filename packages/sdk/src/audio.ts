/**
 * Audio helpers for applications: decode `media` payloads to PCM and encode PCM for `playAudio`.
 * μ-law is G.711 (via `alawmulaw`); L16 is signed 16-bit little-endian (protocol.md §3.2).
 */
import alawmulaw from 'alawmulaw';

const { alaw, mulaw } = alawmulaw;
import type { StreamEncoding } from '@callstream/protocol';

/** Decodes a base64 `media.payload` in the stream's encoding to 16-bit PCM. */
export function decodePayload(payloadBase64: string, encoding: StreamEncoding): Int16Array {
  const bytes = Buffer.from(payloadBase64, 'base64');
  if (encoding === 'audio/x-mulaw') return mulaw.decode(bytes);
  const out = new Int16Array(bytes.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2);
  return out;
}

/** Encodes 16-bit PCM in an encoding: μ-law bytes, or L16 little-endian bytes. */
export function encodePcm(pcm: Int16Array, encoding: StreamEncoding): Buffer {
  if (encoding === 'audio/x-mulaw') return Buffer.from(mulaw.encode(pcm));
  const out = Buffer.alloc(pcm.length * 2);
  for (let i = 0; i < pcm.length; i++) out.writeInt16LE(pcm[i]!, i * 2);
  return out;
}

/** Decodes A-law bytes (for apps that receive A-law from elsewhere). */
export function decodeAlaw(bytes: Uint8Array): Int16Array {
  return alaw.decode(bytes);
}
