/** Shared set-up for engine tests: a fake-clock runtime, a test leg and a call. */
import pino from 'pino';
import { createRequire } from 'node:module';
import { parseStreamElement } from '@callstream/protocol';
import { createRuntime, parseConfig, type ConfigInput, type Runtime } from '../src/index.js';
import { FakeClock, TestLeg } from '../src/testing/index.js';
import type { Call } from '../src/call/call.js';
import type { Stream } from '../src/stream/stream.js';

export interface Harness {
  clock: FakeClock;
  runtime: Runtime;
  leg: TestLeg;
  call: Call;
  startStream(url: string, attributes?: Record<string, string>): Stream;
}

/** A runtime on a fake clock with one call on a {@link TestLeg}. */
export function harness(config: ConfigInput = {}): Harness {
  const clock = new FakeClock();
  const runtime = createRuntime(parseConfig(config), {
    clock,
    mediaClock: clock,
    logger: pino({ level: 'silent' }),
  });
  const leg = new TestLeg();
  const call = runtime.newCall(leg, { from: '15551230000', to: '15559870000' });
  return {
    clock,
    runtime,
    leg,
    call,
    startStream(url, attributes = {}) {
      const p = parseStreamElement(attributes, url);
      return call.startStream(p.params, p.rejection);
    },
  };
}

/** Real-time wait until `cond` holds (sockets are real even when the clock is fake). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** μ-law frames of a 440 Hz tone, `ms` long (multiple of 20). */
export function toneMulaw(ms: number, g711Encode: (law: 'mulaw', pcm: Int16Array) => Uint8Array): Uint8Array {
  const n = (ms / 1000) * 8000;
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000));
  return g711Encode('mulaw', pcm);
}

/** The official `plivo` package's V3 validator (the conformance oracle for signatures). */
export const plivo = createRequire(import.meta.url)('plivo') as {
  validateV3Signature(
    method: string,
    uri: string,
    nonce: string,
    token: string,
    signature: string,
    params?: Record<string, string>,
  ): boolean;
};

/** Asserts that a received callback carries a V3 signature the official validator accepts. */
export function assertSignedCallback(
  r: { method: string; url: string; headers: Record<string, unknown>; params: Record<string, string> },
  token: string,
): void {
  const nonce = String(r.headers['x-plivo-signature-v3-nonce']);
  const signature = String(r.headers['x-plivo-signature-v3']);
  const ok = plivo.validateV3Signature(
    r.method,
    r.url,
    nonce,
    token,
    signature,
    r.method === 'POST' ? r.params : {},
  );
  if (!ok) throw new Error(`callback to ${r.url} not accepted by plivo.validateV3Signature`);
  if (
    plivo.validateV3Signature(
      r.method,
      r.url,
      nonce,
      `${token}x`,
      signature,
      r.method === 'POST' ? r.params : {},
    )
  ) {
    throw new Error('validator accepted a wrong token: the check cannot fail');
  }
}

/**
 * A fresh PostgreSQL database for one test file when `CALLSTREAM_TEST_DATABASE_URL` (an admin URL)
 * is set, else `undefined` (SQLite). Each call creates a new database so runs never share state.
 */
export async function testDatabaseUrl(): Promise<string | undefined> {
  const admin = process.env.CALLSTREAM_TEST_DATABASE_URL;
  if (!admin) return undefined;
  const { default: pg } = await import('pg');
  const name = `cs_test_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}
