/**
 * L16 as callstream's WebSocket protocol carries it: signed 16-bit **little-endian** mono PCM
 * (protocol.md §3.2, §6 #20 — not RTP's big-endian L16).
 */
import { endianness } from 'node:os';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/**
 * Reads little-endian 16-bit samples. A view (no copy) when the bytes are aligned and the host is
 * little-endian; otherwise a copy. An odd trailing byte is ignored.
 */
export function l16ToPcm(bytes: Uint8Array): Int16Array {
  const n = bytes.length >> 1;
  if (LITTLE_ENDIAN_HOST && (bytes.byteOffset & 1) === 0) {
    return new Int16Array(bytes.buffer, bytes.byteOffset, n);
  }
  const out = new Int16Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
  return out;
}

/** Writes samples as little-endian bytes: a view on little-endian hosts, else a copy. */
export function pcmToL16(pcm: Int16Array): Buffer {
  if (LITTLE_ENDIAN_HOST) return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const out = Buffer.alloc(pcm.length * 2);
  for (let i = 0; i < pcm.length; i++) out.writeInt16LE(pcm[i]!, i * 2);
  return out;
}
