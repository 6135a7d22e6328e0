/**
 * Plivo request signatures, version 3 (protocol.md §4.4), as `validateV3Signature` in the
 * official SDKs computes them.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Parameters of a request body (form fields); a repeated key has several values. */
export type SignedParams = Readonly<Record<string, string | readonly string[]>>;

/** Header names carrying V3 signatures (protocol.md §4.4). */
export const SIGNATURE_HEADERS = {
  signature: 'X-Plivo-Signature-V3',
  mainAccountSignature: 'X-Plivo-Signature-Ma-V3',
  nonce: 'X-Plivo-Signature-V3-Nonce',
} as const;

function asList(v: string | readonly string[]): string[] {
  return typeof v === 'string' ? [v] : [...v];
}

/**
 * Builds the string that is signed, before `"." + nonce` (protocol.md §4.4 steps 1–4).
 * @param method `GET` or `POST` (others are signed like `GET`)
 * @param url absolute URL; its query parameters are percent-decoded and sorted
 * @param body POST body parameters (ignored for GET)
 * @throws TypeError if `url` is not an absolute URL
 */
export function v3SignedMessage(method: string, url: string, body: SignedParams = {}): string {
  const u = new URL(url);
  const base = `${u.protocol}//${u.host}${u.pathname}`;
  const query = new Map<string, string[]>();
  for (const [k, v] of u.searchParams) {
    const list = query.get(k);
    if (list) list.push(v);
    else query.set(k, [v]);
  }
  const q = [...query.keys()]
    .sort()
    .flatMap((k) => (query.get(k) ?? []).sort().map((v) => `${k}=${v}`))
    .join('&');
  const bodyKeys = Object.keys(body);
  if (method.toUpperCase() !== 'POST' || bodyKeys.length === 0) {
    return q.length > 0 ? `${base}?${q}` : base;
  }
  let s = `${base}?${q}`;
  if (q.length > 0) s += '.';
  for (const k of bodyKeys.sort()) {
    for (const v of asList(body[k] ?? '').sort()) s += k + v;
  }
  return s;
}

/** HMAC-SHA256 of `message + "." + nonce` keyed by `token`, base64 (protocol.md §4.4 step 5). */
export function v3Sign(message: string, nonce: string, token: string): string {
  return createHmac('sha256', token).update(`${message}.${nonce}`).digest('base64');
}

/** Signs one request: {@link v3SignedMessage} then {@link v3Sign}. */
export function signV3Request(
  method: string,
  url: string,
  body: SignedParams,
  nonce: string,
  token: string,
): string {
  return v3Sign(v3SignedMessage(method, url, body), nonce, token);
}

/**
 * Verifies a V3 signature header, which may hold several signatures separated by `,`
 * (any match is accepted, step 6). Constant-time per candidate.
 */
export function verifyV3Request(
  method: string,
  url: string,
  body: SignedParams,
  nonce: string,
  token: string,
  header: string,
): boolean {
  const expected = Buffer.from(signV3Request(method, url, body, nonce, token));
  let ok = false;
  for (const candidate of header.split(',')) {
    const got = Buffer.from(candidate.trim());
    if (got.length === expected.length && timingSafeEqual(got, expected)) ok = true;
  }
  return ok;
}

/**
 * The three URL variants signed on a WebSocket upgrade (protocol.md §3.1): (1) `wss→https`,
 * `ws→http`; (2) scheme `http`; (3) variant 2 + `/websocket` appended to the whole URL string.
 * @throws TypeError if `wsUrl` is not an absolute URL
 */
export function upgradeSignatureUrls(wsUrl: string): [string, string, string] {
  const u = new URL(wsUrl);
  const rest = `//${u.host}${u.pathname}${u.search}`;
  const v1 = `${u.protocol === 'wss:' ? 'https:' : 'http:'}${rest}`;
  const v2 = `http:${rest}`;
  return [v1, v2, `${v2}/websocket`];
}

/** The `X-Plivo-Signature-V3` value of an upgrade: the three variant signatures joined by `,`. */
export function signUpgrade(wsUrl: string, nonce: string, token: string): string {
  return upgradeSignatureUrls(wsUrl)
    .map((u) => signV3Request('GET', u, {}, nonce, token))
    .join(',');
}
