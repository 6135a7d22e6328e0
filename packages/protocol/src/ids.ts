import { randomUUID, randomInt } from 'node:crypto';

/** A random lowercase RFC 4122 version-4 UUID (protocol.md: every id callstream generates). */
export function newUuid(): string {
  return randomUUID();
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** True if `value` is a lowercase RFC 4122 v4 UUID. */
export function isUuidV4(value: string): boolean {
  return UUID_V4.test(value);
}

/** A fresh random 20-digit decimal nonce for V3 signatures (protocol.md §4.4). */
export function newNonce(): string {
  let s = String(randomInt(1, 10));
  while (s.length < 20) s += String(randomInt(0, 10));
  return s;
}
