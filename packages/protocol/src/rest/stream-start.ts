/**
 * Body of `POST …/Call/{call_uuid}/Stream/` (protocol.md §2.2 "Start"), validated in the order of
 * the spec, each failure with its exact `error` text. The duplicate-URL check (11) needs the call's
 * live streams and is the caller's. Pure: no I/O.
 */
import { parseStreamContentType, STREAM_CONTENT_TYPES } from '../content-type.js';
import { parseExtraHeaders } from '../extra-headers.js';
import {
  STREAM_DEFAULTS,
  isHttpUrl,
  isWebSocketUrl,
  parseNoiseCancellationLevel,
  type AttributeIssue,
  type StreamParams,
} from '../stream-attributes.js';

/** Result of {@link parseStreamStartBody}: parameters, or the 400 `error` text. */
export type StreamStartResult =
  { ok: true; params: StreamParams; warnings: AttributeIssue[] } | { ok: false; error: string };

/** Body values as JSON or form decoding produce them. */
export type RestBody = Readonly<Record<string, unknown>>;

/** Looks a key up case-insensitively (old docs write `Service_url`, §2.1). */
function field(body: RestBody, name: string): unknown {
  if (name in body) return body[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(body)) if (k.toLowerCase() === lower) return body[k];
  return undefined;
}

/** REST boolean: `true`/`false` or `"true"`/`"false"` any case (§2.1). `undefined` if absent. */
export function restBoolean(v: unknown): boolean | null | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'true') return true;
    if (s === 'false') return false;
  }
  return null;
}

/** REST integer: a number or numeric string (§2.1). `undefined` if absent, `null` if not an integer. */
export function restInteger(v: unknown): number | null | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : null;
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : null;
  }
  return null;
}

function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

/**
 * Validates a stream-start body (protocol.md §2.2 checks 1–10).
 * @param options.strict strict extraHeaders characters (§1.2)
 */
export function parseStreamStartBody(body: RestBody, options: { strict?: boolean } = {}): StreamStartResult {
  const fail = (error: string): StreamStartResult => ({ ok: false, error });
  const warnings: AttributeIssue[] = [];

  const urlRaw = field(body, 'service_url');
  const url = text(urlRaw)?.trim();
  if (url === undefined || url === '') return fail('service_url is required');
  if (!isWebSocketUrl(url)) return fail('service_url must be a ws:// or wss:// URL');

  const bidi = restBoolean(field(body, 'bidirectional'));
  if (bidi === null) return fail('bidirectional must be true or false');

  const trackRaw = field(body, 'audio_track');
  let audioTrack = STREAM_DEFAULTS.audioTrack;
  if (trackRaw !== undefined && trackRaw !== null && trackRaw !== '') {
    const t = text(trackRaw)?.trim().toLowerCase();
    if (t !== 'inbound' && t !== 'outbound' && t !== 'both')
      return fail('audio_track must be one of inbound, outbound, both');
    audioTrack = t;
  }
  if (bidi === true && audioTrack !== 'inbound')
    return fail('audio_track must be inbound when bidirectional is true');

  const timeout = restInteger(field(body, 'stream_timeout'));
  if (timeout === null || (timeout !== undefined && timeout <= 0))
    return fail('stream_timeout must be a positive integer');

  const cbRaw = field(body, 'status_callback_url');
  let statusCallbackUrl: string | null = null;
  if (cbRaw !== undefined && cbRaw !== null && cbRaw !== '') {
    const cb = text(cbRaw)?.trim() ?? '';
    if (!isHttpUrl(cb)) return fail('status_callback_url must be an http:// or https:// URL');
    statusCallbackUrl = cb;
  }

  const methodRaw = field(body, 'status_callback_method');
  let statusCallbackMethod: 'GET' | 'POST' = 'POST';
  if (methodRaw !== undefined && methodRaw !== null && methodRaw !== '') {
    const m = text(methodRaw)?.trim().toUpperCase();
    if (m !== 'GET' && m !== 'POST') return fail('status_callback_method must be GET or POST');
    statusCallbackMethod = m;
  }

  const ctRaw = field(body, 'content_type');
  let contentType = STREAM_DEFAULTS.contentType;
  if (ctRaw !== undefined && ctRaw !== null && ctRaw !== '') {
    const c = parseStreamContentType(text(ctRaw) ?? '');
    if (!c) return fail(`content_type must be one of ${STREAM_CONTENT_TYPES.join(', ')}`);
    contentType = c;
  }

  const ehRaw = field(body, 'extra_headers');
  let extraHeaders = STREAM_DEFAULTS.extraHeaders;
  if (ehRaw !== undefined && ehRaw !== null) {
    const eh = parseExtraHeaders(text(ehRaw) ?? '', options);
    if (!eh.ok) return fail(`extra_headers: ${eh.detail}`);
    extraHeaders = eh.value;
  }

  // noise_cancellation(_level): rules of §1.2 — warnings, never a 400.
  let noiseCancellation = false;
  const nc = restBoolean(field(body, 'noise_cancellation'));
  if (nc === null) {
    warnings.push({
      code: 'attribute_invalid',
      attribute: 'noise_cancellation',
      message: 'noise_cancellation must be true or false; using false',
    });
  } else if (nc !== undefined) noiseCancellation = nc;
  let noiseCancellationLevel = STREAM_DEFAULTS.noiseCancellationLevel;
  const levelRaw = field(body, 'noise_cancellation_level');
  if (noiseCancellation && levelRaw !== undefined && levelRaw !== null && levelRaw !== '') {
    const level =
      typeof levelRaw === 'number'
        ? Number.isInteger(levelRaw) && levelRaw >= 60 && levelRaw <= 100
          ? levelRaw
          : null
        : parseNoiseCancellationLevel(text(levelRaw) ?? '');
    if (level === null) {
      warnings.push({
        code: 'attribute_invalid',
        attribute: 'noise_cancellation_level',
        message: `noise_cancellation_level must be an integer 60-100, got ${JSON.stringify(levelRaw)}; using 85`,
      });
    } else noiseCancellationLevel = level;
  }

  const keep = restBoolean(field(body, 'keep_call_alive'));
  return {
    ok: true,
    warnings,
    params: {
      serviceUrl: url,
      bidirectional: bidi ?? false,
      audioTrack,
      streamTimeout: timeout ?? STREAM_DEFAULTS.streamTimeout,
      statusCallbackUrl,
      statusCallbackMethod,
      contentType,
      extraHeaders,
      keepCallAlive: keep ?? false,
      noiseCancellation,
      noiseCancellationLevel,
    },
  };
}
