/**
 * `extraHeaders` parsing (protocol.md §1.2 "extraHeaders", §6 #2–#4).
 */

/** Parsed extraHeaders: the raw (trimmed) string and its pairs in input order, duplicates resolved. */
export interface ExtraHeaders {
  /** The attribute as given, trimmed; `""` if none. Sent raw in callbacks (`ExtraHeaders`). */
  readonly raw: string;
  /** Pairs in first-seen order; a duplicate key keeps its first position and its last value. */
  readonly pairs: ReadonlyArray<readonly [key: string, value: string]>;
  /** The JSON-object string sent as `extra_headers` on start/media/dtmf: `"{}"` when none. */
  readonly json: string;
}

/** Result of {@link parseExtraHeaders}. */
export type ExtraHeadersResult =
  { ok: true; value: ExtraHeaders; warnings: string[] } | { ok: false; detail: string };

/** Maximum size of the extraHeaders string in UTF-8 bytes. */
export const EXTRA_HEADERS_MAX_BYTES = 512;

/** No extraHeaders. */
export const NO_EXTRA_HEADERS: ExtraHeaders = { raw: '', pairs: [], json: '{}' };

/**
 * Parses `k=v` pairs separated by `,` or `;`.
 *
 * Keys and values match `[A-Za-z0-9_-]*` (strict: `[A-Za-z0-9]*`); keys are non-empty; at most
 * 512 UTF-8 bytes. On failure `detail` is the REST wording after `extra_headers: ` (protocol.md
 * §2.2 check 10): `exceeds 512 bytes`, `malformed pair "<pair>"`, `invalid character in "<pair>"`.
 */
export function parseExtraHeaders(
  input: string | undefined | null,
  options: { strict?: boolean } = {},
): ExtraHeadersResult {
  const raw = (input ?? '').trim();
  if (raw === '') return { ok: true, value: NO_EXTRA_HEADERS, warnings: [] };
  if (Buffer.byteLength(raw, 'utf8') > EXTRA_HEADERS_MAX_BYTES) {
    return { ok: false, detail: `exceeds ${EXTRA_HEADERS_MAX_BYTES} bytes` };
  }
  const allowed = options.strict ? /^[A-Za-z0-9]*$/ : /^[A-Za-z0-9_-]*$/;
  const map = new Map<string, string>();
  const warnings: string[] = [];
  for (const part of raw.split(/[,;]/)) {
    const pair = part.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) return { ok: false, detail: `malformed pair "${pair}"` };
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (!allowed.test(key) || !allowed.test(value)) {
      return { ok: false, detail: `invalid character in "${pair}"` };
    }
    if (map.has(key)) warnings.push(`extraHeaders: duplicate key "${key}", last value wins`);
    map.set(key, value);
  }
  const pairs = [...map.entries()].map(([k, v]) => [k, v] as const);
  return {
    ok: true,
    value: { raw, pairs, json: JSON.stringify(Object.fromEntries(pairs)) },
    warnings,
  };
}

/**
 * Headers callstream sets itself; extraHeaders keys colliding with them (case-insensitive) stay
 * JSON-only (protocol.md §1.2).
 */
export function isReservedHeaderName(name: string): boolean {
  const n = name.toLowerCase();
  return (
    n === 'host' ||
    n === 'connection' ||
    n === 'upgrade' ||
    n === 'authorization' ||
    n === 'user-agent' ||
    n.startsWith('sec-websocket-') ||
    n.startsWith('content-') ||
    n.startsWith('x-plivo-')
  );
}

/**
 * The extraHeaders pairs usable as HTTP headers on the upgrade and on callbacks (protocol.md §1.2):
 * every pair except keys colliding with headers callstream sets, which stay JSON-only.
 */
export function extraHeadersAsHttp(headers: ExtraHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers.pairs) if (!isReservedHeaderName(k)) out[k] = v;
  return out;
}
