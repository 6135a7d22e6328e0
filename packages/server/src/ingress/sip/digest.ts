/**
 * Server side of SIP digest authentication (RFC 3261 §22.4, RFC 2617 MD5 with qop=auth).
 * Nonces are stateless: `<issued ms>.<HMAC(secret, issued ms)>`, valid for `nonceTtlMs`, so a
 * restart or many concurrent challenges need no table. Comparisons are constant-time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Credentials inbound callers must present. */
export interface DigestCredentials {
  realm: string;
  username: string;
  password: string;
}

/** Outcome of checking an INVITE's Authorization header. */
export type DigestCheck =
  | { ok: true }
  | {
      ok: false;
      stale: boolean;
      reason: 'missing' | 'malformed' | 'wrong_user' | 'bad_response' | 'bad_nonce';
    };

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** Parses `Digest k=v, k="v", …` into lower-cased keys; null if it is not a Digest header. */
export function parseDigestHeader(value: string): Record<string, string> | null {
  const m = /^\s*Digest\s+(.*)$/is.exec(value);
  if (!m) return null;
  const out: Record<string, string> = {};
  const re = /([a-zA-Z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[1]!))) out[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? '';
  return out;
}

/** Issues and verifies digest challenges. */
export class DigestAuthenticator {
  private readonly secret = randomBytes(32);

  constructor(
    private readonly credentials: DigestCredentials,
    private readonly now: () => number,
    private readonly nonceTtlMs = 300_000,
  ) {}

  private sign(issued: string): string {
    return createHmac('sha256', this.secret).update(issued).digest('base64url').slice(0, 22);
  }

  /** The `WWW-Authenticate` value of a 401 challenge. */
  challenge(stale = false): string {
    const issued = String(Math.floor(this.now()));
    const nonce = `${issued}.${this.sign(issued)}`;
    return `Digest realm="${this.credentials.realm}", nonce="${nonce}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  }

  /** Verifies an `Authorization` header value for `method` (RFC 2617 §3.2.2). */
  verify(method: string, authorization: string | undefined): DigestCheck {
    if (!authorization) return { ok: false, stale: false, reason: 'missing' };
    const d = parseDigestHeader(authorization);
    if (!d || !d.nonce || !d.uri || !d.response || d.username === undefined)
      return { ok: false, stale: false, reason: 'malformed' };
    if (d.algorithm && d.algorithm.toUpperCase() !== 'MD5')
      return { ok: false, stale: false, reason: 'malformed' };
    const [issued, mac] = d.nonce.split('.');
    if (!issued || !mac || !safeEqual(mac, this.sign(issued)))
      return { ok: false, stale: false, reason: 'bad_nonce' };
    if (this.now() - Number(issued) > this.nonceTtlMs) return { ok: false, stale: true, reason: 'bad_nonce' };
    if (!safeEqual(d.username, this.credentials.username))
      return { ok: false, stale: false, reason: 'wrong_user' };
    const ha1 = md5(`${d.username}:${this.credentials.realm}:${this.credentials.password}`);
    const ha2 = md5(`${method}:${d.uri}`);
    const expected =
      d.qop === 'auth'
        ? md5(`${ha1}:${d.nonce}:${d.nc ?? ''}:${d.cnonce ?? ''}:auth:${ha2}`)
        : md5(`${ha1}:${d.nonce}:${ha2}`);
    return safeEqual(d.response.toLowerCase(), expected)
      ? { ok: true }
      : { ok: false, stale: false, reason: 'bad_response' };
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
