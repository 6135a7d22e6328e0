/**
 * G.711 μ-law (PCMU) and A-law (PCMA), ITU-T G.711.
 *
 * The code tables are computed once at load from `alawmulaw` (the reference implementation we
 * trust), so per-frame conversion is a table lookup: 256-entry decode tables and 65 536-entry
 * encode tables indexed by the 16-bit sample's two's-complement bits.
 */
import alawmulaw from 'alawmulaw';

const { alaw, mulaw } = alawmulaw;

function buildTables(codec: typeof mulaw) {
  const decode = new Int16Array(256);
  for (let i = 0; i < 256; i++) decode[i] = codec.decodeSample(i);
  const encode = new Uint8Array(65536);
  for (let i = 0; i < 65536; i++) encode[i] = codec.encodeSample(i < 32768 ? i : i - 65536);
  return { decode, encode };
}

const MULAW = buildTables(mulaw);
const ALAW = buildTables(alaw);

/** The G.711 laws. */
export type G711Law = 'mulaw' | 'alaw';

function tables(law: G711Law) {
  return law === 'mulaw' ? MULAW : ALAW;
}

/**
 * Decodes G.711 bytes to 16-bit linear PCM (one sample per byte).
 * @param out optional destination, at least `bytes.length` samples
 */
export function g711Decode(law: G711Law, bytes: Uint8Array, out = new Int16Array(bytes.length)): Int16Array {
  const t = tables(law).decode;
  for (let i = 0; i < bytes.length; i++) out[i] = t[bytes[i]!]!;
  return out;
}

/**
 * Encodes 16-bit linear PCM to G.711 bytes (one byte per sample).
 * @param out optional destination, at least `pcm.length` bytes
 */
export function g711Encode(law: G711Law, pcm: Int16Array, out = new Uint8Array(pcm.length)): Uint8Array {
  const t = tables(law).encode;
  for (let i = 0; i < pcm.length; i++) out[i] = t[pcm[i]! & 0xffff]!;
  return out;
}

/** μ-law code of digital silence (0). */
export const MULAW_SILENCE = 0xff;
/** A-law code of digital silence (0). */
export const ALAW_SILENCE = 0xd5;
