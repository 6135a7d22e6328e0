/**
 * `<Stream>` attributes: parsing and validation (protocol.md §1.2).
 *
 * Pure: takes the element's attributes and trimmed text, returns effective parameters, warnings
 * and, if the element must be rejected, why. The caller (XML interpreter, simulated caller CLI,
 * later REST) decides what to do with a rejection (§1.2 "Reject").
 */
import { DEFAULT_CONTENT_TYPE, parseStreamContentType, type StreamContentType } from './content-type.js';
import type { AudioTrack } from './events.js';
import { NO_EXTRA_HEADERS, parseExtraHeaders, type ExtraHeaders } from './extra-headers.js';

/** Effective parameters of one stream. */
export interface StreamParams {
  /** `ws://` or `wss://` URL, trimmed, query kept verbatim. */
  serviceUrl: string;
  bidirectional: boolean;
  audioTrack: AudioTrack;
  /** Seconds, > 0; default 86400. */
  streamTimeout: number;
  /** Absolute http(s) URL or `null` (no callbacks). */
  statusCallbackUrl: string | null;
  statusCallbackMethod: 'GET' | 'POST';
  contentType: StreamContentType;
  extraHeaders: ExtraHeaders;
  keepCallAlive: boolean;
  noiseCancellation: boolean;
  /** 60–100; default 85. */
  noiseCancellationLevel: number;
}

/** Default stream parameters (protocol.md §1.2 table). */
export const STREAM_DEFAULTS: Omit<StreamParams, 'serviceUrl'> = {
  bidirectional: false,
  audioTrack: 'inbound',
  streamTimeout: 86400,
  statusCallbackUrl: null,
  statusCallbackMethod: 'POST',
  contentType: DEFAULT_CONTENT_TYPE,
  extraHeaders: NO_EXTRA_HEADERS,
  keepCallAlive: false,
  noiseCancellation: false,
  noiseCancellationLevel: 85,
};

/** A problem with one attribute: `code` is the debug-log code (§3.8). */
export interface AttributeIssue {
  code: 'attribute_invalid' | 'invalid_parameters';
  attribute: string;
  message: string;
}

/** Result of {@link parseStreamElement}. */
export interface StreamElementResult {
  /** Effective parameters (defaults where an attribute was invalid or missing). */
  params: StreamParams;
  /** Warnings: attribute defaulted, coerced or ignored. */
  warnings: AttributeIssue[];
  /** Why the element is rejected (`Invalid stream parameters: <detail>`), or `null`. */
  rejection: string | null;
}

/** Options of {@link parseStreamElement}. */
export interface StreamElementOptions {
  /** Strict mode (protocol.md §1.2): warnings become rejections. */
  strict?: boolean;
}

const KNOWN = new Set([
  'bidirectional',
  'audioTrack',
  'streamTimeout',
  'statusCallbackUrl',
  'statusCallbackMethod',
  'contentType',
  'extraHeaders',
  'keepCallAlive',
  'noiseCancellation',
  'noiseCancellationLevel',
]);

/**
 * Parses a boolean leniently: `true`/`false` any case, also `1`/`0` unless strict.
 * @returns the value, or `null` if not a boolean.
 */
export function parseBooleanText(value: string, strict = false): boolean | null {
  const v = value.trim().toLowerCase();
  if (v === 'true' || (!strict && v === '1')) return true;
  if (v === 'false' || (!strict && v === '0')) return false;
  return null;
}

/** Parses a positive integer written in decimal digits; `null` otherwise. */
export function parsePositiveInteger(value: string): number | null {
  const v = value.trim();
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** True for an absolute `ws://` or `wss://` URL with a host. */
export function isWebSocketUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** True for an absolute `http://` or `https://` URL with a host. */
export function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** Parses `noiseCancellationLevel`: an integer 60–100, else `null`. */
export function parseNoiseCancellationLevel(value: string): number | null {
  const v = value.trim();
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n >= 60 && n <= 100 ? n : null;
}

/**
 * Validates a `<Stream>` element (protocol.md §1.2).
 * @param attributes attribute name → value, names case-sensitive as in XML
 * @param text the element's text (the WebSocket URL); trimmed here
 */
export function parseStreamElement(
  attributes: Readonly<Record<string, string>>,
  text: string,
  options: StreamElementOptions = {},
): StreamElementResult {
  const strict = options.strict ?? false;
  const params: StreamParams = { ...STREAM_DEFAULTS, serviceUrl: text.trim() };
  const warnings: AttributeIssue[] = [];
  const rejections: string[] = [];
  const warn = (attribute: string, message: string) => {
    if (strict) rejections.push(message);
    else warnings.push({ code: 'attribute_invalid', attribute, message });
  };
  const reject = (message: string) => rejections.push(message);

  for (const name of Object.keys(attributes)) {
    if (!KNOWN.has(name)) warn(name, `unknown attribute "${name}" ignored`);
  }
  const attr = (name: string): string | undefined => attributes[name];

  if (!isWebSocketUrl(params.serviceUrl)) {
    reject(`stream URL must be a ws:// or wss:// URL, got "${params.serviceUrl.slice(0, 200)}"`);
  }

  const bidi = attr('bidirectional');
  if (bidi !== undefined) {
    const b = parseBooleanText(bidi, strict);
    if (b === null) reject(`bidirectional must be true or false, got "${bidi}"`);
    else params.bidirectional = b;
  }

  const track = attr('audioTrack');
  if (track !== undefined) {
    const t = track.trim().toLowerCase();
    if (t === 'inbound' || t === 'outbound' || t === 'both') params.audioTrack = t;
    else reject(`audioTrack must be one of inbound, outbound, both, got "${track}"`);
  }
  if (params.bidirectional && params.audioTrack !== 'inbound') {
    const message = `audioTrack "${params.audioTrack}" is not allowed with bidirectional="true"; using inbound`;
    if (strict) reject(`audioTrack must be inbound when bidirectional is true`);
    else warnings.push({ code: 'attribute_invalid', attribute: 'audioTrack', message });
    params.audioTrack = 'inbound';
  }

  const timeout = attr('streamTimeout');
  if (timeout !== undefined) {
    const n = parsePositiveInteger(timeout);
    if (n === null)
      warn('streamTimeout', `streamTimeout must be a positive integer, got "${timeout}"; using 86400`);
    else params.streamTimeout = n;
  }

  const cbUrl = attr('statusCallbackUrl');
  if (cbUrl !== undefined && cbUrl.trim() !== '') {
    if (isHttpUrl(cbUrl.trim())) params.statusCallbackUrl = cbUrl.trim();
    else
      warn(
        'statusCallbackUrl',
        `statusCallbackUrl must be an http:// or https:// URL, got "${cbUrl}"; no callbacks`,
      );
  }

  const cbMethod = attr('statusCallbackMethod');
  if (cbMethod !== undefined) {
    const m = cbMethod.trim().toUpperCase();
    if (m === 'GET' || m === 'POST') params.statusCallbackMethod = m;
    else
      warn('statusCallbackMethod', `statusCallbackMethod must be GET or POST, got "${cbMethod}"; using POST`);
  }

  const ct = attr('contentType');
  if (ct !== undefined) {
    const c = parseStreamContentType(ct);
    if (c === null) {
      reject(
        `contentType must be one of audio/x-l16;rate=8000, audio/x-l16;rate=16000, audio/x-mulaw;rate=8000, got "${ct}"`,
      );
    } else params.contentType = c;
  }

  const eh = attr('extraHeaders');
  if (eh !== undefined) {
    const r = parseExtraHeaders(eh, { strict });
    if (!r.ok) reject(`extraHeaders: ${r.detail}`);
    else {
      params.extraHeaders = r.value;
      for (const w of r.warnings)
        warnings.push({ code: 'attribute_invalid', attribute: 'extraHeaders', message: w });
    }
  }

  const keep = attr('keepCallAlive');
  if (keep !== undefined) {
    const b = parseBooleanText(keep, strict);
    if (b === null) warn('keepCallAlive', `keepCallAlive must be true or false, got "${keep}"; using false`);
    else params.keepCallAlive = b;
  }

  const nc = attr('noiseCancellation');
  if (nc !== undefined) {
    const b = parseBooleanText(nc, true);
    if (b === null)
      warn('noiseCancellation', `noiseCancellation must be "true" or "false", got "${nc}"; using false`);
    else params.noiseCancellation = b;
  }

  const level = attr('noiseCancellationLevel');
  if (level !== undefined && params.noiseCancellation) {
    const n = parseNoiseCancellationLevel(level);
    if (n === null) {
      // §1.2: a logged error, 85 used, the stream proceeds (even in strict mode).
      warnings.push({
        code: 'attribute_invalid',
        attribute: 'noiseCancellationLevel',
        message: `noiseCancellationLevel must be an integer 60-100, got "${level}"; using 85`,
      });
    } else params.noiseCancellationLevel = n;
  }

  return {
    params,
    warnings,
    rejection: rejections.length > 0 ? `Invalid stream parameters: ${rejections.join('; ')}` : null,
  };
}
