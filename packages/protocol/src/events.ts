/**
 * WebSocket events (protocol.md §3.3–§3.4).
 *
 * callstream → app messages are encoded **exactly** (field order and types of §3.3) by string
 * templates: the hot path (`media`, 50/s per track) builds no nested objects. Each encoder returns a
 * message *body* without its `sequenceNumber`; {@link withSequence} prefixes the number when the
 * message is written to the socket (§3.2: numbers are assigned at write time).
 *
 * app → callstream messages are decoded **leniently** (§3.4, §6 #8–#9) with zod schemas.
 */
import { z } from 'zod';
import type { StreamEncoding } from './content-type.js';

/** A track of a call (protocol.md terms). */
export type Track = 'inbound' | 'outbound';
/** `audioTrack` attribute values. */
export type AudioTrack = 'inbound' | 'outbound' | 'both';

/** Tracks listed in `start.tracks` / `stop.tracks` for an `audioTrack` value. */
export function tracksOf(audioTrack: AudioTrack): Track[] {
  return audioTrack === 'both' ? ['inbound', 'outbound'] : [audioTrack];
}

/**
 * A server→app message without its leading `{"sequenceNumber":N,`; always ends with `}`.
 * Opaque: build it with the `encode*Body` functions.
 */
export type MessageBody = string & { readonly __messageBody: unique symbol };

/** Prefixes `{"sequenceNumber":seq,` to a body, giving the exact JSON text to send. */
export function withSequence(sequenceNumber: number, body: MessageBody): string {
  return `{"sequenceNumber":${sequenceNumber},${body}`;
}

const json = JSON.stringify;

/** Fields of a `start` event (protocol.md §3.3). */
export interface StartEventFields {
  callId: string;
  streamId: string;
  /** A string (config; default the auth_id). */
  accountId: string;
  tracks: readonly Track[];
  encoding: StreamEncoding;
  /** Hz, a number. */
  sampleRate: number;
  /** The extraHeaders JSON-object string (`"{}"` if none). */
  extraHeadersJson: string;
}

/** `start` body: no top-level `streamId` (§3.3). */
export function encodeStartBody(f: StartEventFields): MessageBody {
  return `"event":"start","start":{"callId":${json(f.callId)},"streamId":${json(f.streamId)},"accountId":${json(f.accountId)},"tracks":${json(f.tracks)},"mediaFormat":{"encoding":${json(f.encoding)},"sampleRate":${f.sampleRate}}},"extra_headers":${json(f.extraHeadersJson)}}` as MessageBody;
}

/**
 * Per-stream constant parts of `media`/`dtmf` bodies, computed once so the hot path only
 * concatenates.
 */
export interface StreamTemplate {
  /** `"streamId":"…",` */
  readonly streamIdField: string;
  /** `,"extra_headers":"…"}` */
  readonly extraHeadersTail: string;
}

/** Precomputes the constant parts of a stream's messages. */
export function streamTemplate(streamId: string, extraHeadersJson: string): StreamTemplate {
  return {
    streamIdField: `"streamId":${json(streamId)},`,
    extraHeadersTail: `,"extra_headers":${json(extraHeadersJson)}}`,
  };
}

/**
 * `media` body. `timestampMs` is Unix epoch ms of capture, sent as a string; `chunk` a number
 * from 1 per track; `payloadBase64` the frame's base64 (no JSON escaping needed).
 */
export function encodeMediaBody(
  t: StreamTemplate,
  track: Track,
  timestampMs: number,
  chunk: number,
  payloadBase64: string,
): MessageBody {
  return `${t.streamIdField}"event":"media","media":{"track":"${track}","timestamp":"${Math.floor(timestampMs)}","chunk":${chunk},"payload":"${payloadBase64}"}${t.extraHeadersTail}` as MessageBody;
}

/** `dtmf` body: `digit` one of `0-9 * # A-D`, timestamp epoch ms of the digit's start. */
export function encodeDtmfBody(t: StreamTemplate, digit: string, timestampMs: number): MessageBody {
  return `${t.streamIdField}"event":"dtmf","dtmf":{"track":"inbound","digit":${json(digit)},"timestamp":"${Math.floor(timestampMs)}"}${t.extraHeadersTail}` as MessageBody;
}

/** `playedStream` (or the configured alternative name `played`) body (§3.3, §6 #5). */
export function encodePlayedBody(
  streamId: string,
  name: string,
  eventName: 'playedStream' | 'played' = 'playedStream',
): MessageBody {
  return `"event":"${eventName}","streamId":${json(streamId)},"name":${json(name)}}` as MessageBody;
}

/** `clearedAudio` body. */
export function encodeClearedBody(streamId: string): MessageBody {
  return `"event":"clearedAudio","streamId":${json(streamId)}}` as MessageBody;
}

/** Reasons a stream ends (protocol.md §3.7). */
export type StopReason =
  | 'api_request'
  | 'stream_timeout'
  | 'call_hangup'
  | 'remote_closed'
  | 'connect_failed'
  | 'connection_lost'
  | 'buffer_overflow'
  | 'invalid_parameters';

/** `stop` body (§3.3). */
export function encodeStopBody(
  callId: string,
  streamId: string,
  tracks: readonly Track[],
  reason: StopReason,
): MessageBody {
  return `"event":"stop","streamId":${json(streamId)},"stop":{"callId":${json(callId)},"streamId":${json(streamId)},"tracks":${json(tracks)}},"reason":"${reason}"}` as MessageBody;
}

// ---------------------------------------------------------------------------------------------
// app → callstream (lenient)

/** Content type of a `playAudio` message after lenient parsing (§3.4). */
export type PlayAudioEncoding = 'audio/x-mulaw' | 'audio/x-l16' | 'raw' | 'wav';

/** A decoded `playAudio`. */
export interface PlayAudioMessage {
  event: 'playAudio';
  /** `null` when missing: the stream's codec. */
  encoding: PlayAudioEncoding | null;
  /** Hz from `sampleRate` or the `;rate=` suffix (precedence in that order), else `null`. */
  sampleRate: number | null;
  /** Decoded payload bytes. */
  payload: Buffer;
}
/** A decoded `checkpoint`; `name` is `""` when missing. */
export interface CheckpointMessage {
  event: 'checkpoint';
  name: string;
}
/** A decoded `clearAudio`. */
export interface ClearAudioMessage {
  event: 'clearAudio';
}
/** A decoded `sendDTMF`; `dtmf` as sent (validated per character by the engine, §3.4). */
export interface SendDtmfMessage {
  event: 'sendDTMF';
  dtmf: string;
}
/** Any accepted app→callstream message. */
export type AppMessage = PlayAudioMessage | CheckpointMessage | ClearAudioMessage | SendDtmfMessage;

/** Result of {@link decodeAppMessage}: a message, or why it was rejected (for the debug log). */
export type DecodeResult<T> = { ok: true; message: T } | { ok: false; reason: string };

/** Sample rates accepted in `playAudio` (Hz, inclusive), §3.4. */
export const PLAY_SAMPLE_RATE_MIN = 8000;
export const PLAY_SAMPLE_RATE_MAX = 48000;

const numberLike = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^\s*\d+\s*$/)
    .transform((s) => Number(s)),
]);
const stringLike = z.union([z.string(), z.number().transform(String)]);

const playAudioSchema = z.object({
  media: z.object({
    contentType: z.string().optional(),
    sampleRate: numberLike.optional(),
    payload: z.string(),
  }),
});
const checkpointSchema = z.object({ name: stringLike.optional() });
const sendDtmfSchema = z.object({ dtmf: stringLike });

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/**
 * Decodes base64 strictly enough to reject garbage (standard or URL-safe alphabet, padding
 * optional). Returns `null` for invalid input.
 */
export function decodeBase64(s: string): Buffer | null {
  if (s.length % 4 === 1 || !BASE64.test(s)) return null;
  return Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
}

/**
 * Parses a `playAudio` `contentType` leniently: case-insensitive, optional `;rate=N`,
 * legacy `raw`/`wav` (also `audio/wav`, `audio/x-wav`).
 */
export function parsePlayContentType(
  value: string,
): { encoding: PlayAudioEncoding; rate: number | null } | null {
  const v = value.toLowerCase().replace(/\s+/g, '');
  const m = /^([a-z0-9/.-]+)(?:;rate=(\d+))?$/.exec(v);
  if (!m) return null;
  const rate = m[2] !== undefined ? Number(m[2]) : null;
  switch (m[1]) {
    case 'audio/x-mulaw':
    case 'audio/mulaw':
    case 'audio/pcmu':
      return { encoding: 'audio/x-mulaw', rate };
    case 'audio/x-l16':
    case 'audio/l16':
      return { encoding: 'audio/x-l16', rate };
    case 'raw':
      return { encoding: 'raw', rate };
    case 'wav':
    case 'audio/wav':
    case 'audio/x-wav':
    case 'audio/wave':
      return { encoding: 'wav', rate };
    default:
      return null;
  }
}

function issueText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message.toLowerCase()}`).join('; ');
}

/**
 * Decodes one text frame from the app (protocol.md §3.4). Never throws.
 * Rejections (`ok: false`) carry a reason for the `invalid_message` debug-log entry.
 */
export function decodeAppMessage(text: string): DecodeResult<AppMessage> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  const event = (value as { event?: unknown }).event;
  switch (event) {
    case 'playAudio': {
      // Fast path for the common shape (50 messages per second per stream); anything unusual
      // goes through the schema, which also words the rejection.
      const media = (value as { media?: unknown }).media as
        { contentType?: unknown; sampleRate?: unknown; payload?: unknown } | undefined;
      let fields: { contentType?: string | undefined; sampleRate?: number | undefined; payload: string };
      if (
        typeof media === 'object' &&
        media !== null &&
        typeof media.payload === 'string' &&
        (media.contentType === undefined || typeof media.contentType === 'string') &&
        (media.sampleRate === undefined || Number.isInteger(media.sampleRate))
      ) {
        fields = media as typeof fields;
      } else {
        const r = playAudioSchema.safeParse(value);
        if (!r.success) return { ok: false, reason: `playAudio: ${issueText(r.error)}` };
        fields = r.data.media;
      }
      const { contentType, sampleRate, payload } = fields;
      let encoding: PlayAudioEncoding | null = null;
      let rate: number | null = null;
      if (contentType !== undefined && contentType.trim() !== '') {
        const ct = parsePlayContentType(contentType);
        if (!ct) return { ok: false, reason: `playAudio: unsupported contentType "${contentType}"` };
        encoding = ct.encoding;
        rate = ct.rate;
      }
      if (sampleRate !== undefined) rate = sampleRate;
      if (rate !== null && (rate < PLAY_SAMPLE_RATE_MIN || rate > PLAY_SAMPLE_RATE_MAX)) {
        return {
          ok: false,
          reason: `playAudio: sampleRate ${rate} outside ${PLAY_SAMPLE_RATE_MIN}-${PLAY_SAMPLE_RATE_MAX}`,
        };
      }
      const bytes = decodeBase64(payload);
      if (!bytes) return { ok: false, reason: 'playAudio: payload is not valid base64' };
      return { ok: true, message: { event: 'playAudio', encoding, sampleRate: rate, payload: bytes } };
    }
    case 'checkpoint': {
      const r = checkpointSchema.safeParse(value);
      if (!r.success) return { ok: false, reason: `checkpoint: ${issueText(r.error)}` };
      return { ok: true, message: { event: 'checkpoint', name: r.data.name ?? '' } };
    }
    case 'clearAudio':
      return { ok: true, message: { event: 'clearAudio' } };
    case 'sendDTMF': {
      const r = sendDtmfSchema.safeParse(value);
      if (!r.success) return { ok: false, reason: `sendDTMF: ${issueText(r.error)}` };
      return { ok: true, message: { event: 'sendDTMF', dtmf: r.data.dtmf } };
    }
    default:
      return {
        ok: false,
        reason: typeof event === 'string' ? `unknown event "${event.slice(0, 64)}"` : 'missing "event"',
      };
  }
}

// ---------------------------------------------------------------------------------------------
// callstream → app, decoded (for applications: the SDK and tests)

/** `start` as an application receives it. */
export interface StartEvent {
  event: 'start';
  sequenceNumber: number;
  start: {
    callId: string;
    streamId: string;
    accountId: string;
    tracks: Track[];
    mediaFormat: { encoding: StreamEncoding; sampleRate: number };
  };
  extra_headers: string;
}
/** `media` as an application receives it. */
export interface MediaEvent {
  event: 'media';
  sequenceNumber: number;
  streamId: string;
  media: { track: Track; timestamp: string; chunk: number; payload: string };
  extra_headers: string;
}
/** `dtmf` as an application receives it. */
export interface DtmfEvent {
  event: 'dtmf';
  sequenceNumber: number;
  streamId: string;
  dtmf: { track: Track; digit: string; timestamp: string };
  extra_headers: string;
}
/** `playedStream` (or `played`). */
export interface PlayedStreamEvent {
  event: 'playedStream' | 'played';
  sequenceNumber: number;
  streamId: string;
  name: string;
}
/** `clearedAudio`. */
export interface ClearedAudioEvent {
  event: 'clearedAudio';
  sequenceNumber: number;
  streamId: string;
}
/** `stop`. */
export interface StopEvent {
  event: 'stop';
  sequenceNumber: number;
  streamId: string;
  stop: { callId: string; streamId: string; tracks: Track[] };
  reason: StopReason;
}
/** Any callstream→app event. */
export type ServerEvent =
  StartEvent | MediaEvent | DtmfEvent | PlayedStreamEvent | ClearedAudioEvent | StopEvent;

const track = z.enum(['inbound', 'outbound']);
const serverEventSchema = z.discriminatedUnion('event', [
  z.object({
    event: z.literal('start'),
    sequenceNumber: z.number().int(),
    start: z.object({
      callId: z.string(),
      streamId: z.string(),
      accountId: stringLike,
      tracks: z.array(track),
      mediaFormat: z.object({
        encoding: z.enum(['audio/x-l16', 'audio/x-mulaw']),
        sampleRate: numberLike,
      }),
    }),
    extra_headers: z.string().default('{}'),
  }),
  z.object({
    event: z.literal('media'),
    sequenceNumber: z.number().int(),
    streamId: z.string(),
    media: z.object({
      track,
      timestamp: stringLike,
      chunk: numberLike,
      payload: z.string(),
    }),
    extra_headers: z.string().default('{}'),
  }),
  z.object({
    event: z.literal('dtmf'),
    sequenceNumber: z.number().int(),
    streamId: z.string(),
    dtmf: z.object({ track, digit: z.string(), timestamp: stringLike }),
    extra_headers: z.string().default('{}'),
  }),
  z.object({
    event: z.enum(['playedStream', 'played']),
    sequenceNumber: z.number().int(),
    streamId: z.string(),
    name: z.string().default(''),
  }),
  z.object({
    event: z.literal('clearedAudio'),
    sequenceNumber: z.number().int(),
    streamId: z.string(),
  }),
  z.object({
    event: z.literal('stop'),
    sequenceNumber: z.number().int(),
    streamId: z.string(),
    stop: z.object({ callId: z.string(), streamId: z.string(), tracks: z.array(track) }),
    reason: z.string(),
  }),
]);

/** Decodes a callstream→app event (for applications). Never throws. */
export function decodeServerEvent(text: string): DecodeResult<ServerEvent> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  const r = serverEventSchema.safeParse(value);
  if (!r.success) return { ok: false, reason: issueText(r.error) };
  return { ok: true, message: r.data as ServerEvent };
}

/** Encoders for app→callstream messages (for applications and tests): exact JSON text. */
export const appMessages = {
  /** `playAudio` with `sampleRate` as a number. */
  playAudio(contentType: string, sampleRate: number, payload: Uint8Array): string {
    return `{"event":"playAudio","media":{"contentType":${json(contentType)},"sampleRate":${sampleRate},"payload":"${Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64')}"}}`;
  },
  checkpoint(streamId: string, name: string): string {
    return json({ event: 'checkpoint', streamId, name });
  },
  clearAudio(streamId: string): string {
    return json({ event: 'clearAudio', streamId });
  },
  sendDTMF(digits: string): string {
    return json({ event: 'sendDTMF', dtmf: digits });
  },
};
