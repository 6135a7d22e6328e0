/**
 * Points the official `plivo` SDK at a local server (protocol.md §2.5): its voice requests ignore
 * the `url` option, but each makes a fresh `axios.create()` that inherits `axios.defaults.adapter`,
 * so we wrap that adapter to rewrite `https://api.plivo.com` to the local base.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const plivoPath = require.resolve('plivo');
const axios = createRequire(plivoPath)('axios') as {
  defaults: { adapter: unknown };
  getAdapter(a: unknown): (config: { url?: string; baseURL?: string }) => Promise<unknown>;
};

/** The SDK module. */
export const plivoSdk = require('plivo') as {
  Client: new (authId: string, authToken: string) => PlivoClient;
};

/** The parts of the SDK client the tests use (its typings are incomplete, §2.5). */
export interface PlivoClient {
  calls: {
    stream(
      callUuid: string,
      serviceUrl: string,
      opts?: Record<string, unknown>,
    ): Promise<Record<string, any>>;
    getAllStream(callUuid: string): Promise<Record<string, any>>;
    getStream(callUuid: string, streamId: string): Promise<Record<string, any>>;
    stopStream(callUuid: string, streamId: string): Promise<unknown>;
    stopAllStream(callUuid: string): Promise<unknown>;
    listLiveCalls(): Promise<Record<string, any>>;
    getLiveCall(callUuid: string): Promise<Record<string, any>>;
    hangup(callUuid: string): Promise<unknown>;
    create(
      from: string,
      to: string,
      answerUrl: string,
      opts?: Record<string, unknown>,
    ): Promise<Record<string, any>>;
    transfer(callUuid: string, opts: Record<string, unknown>): Promise<Record<string, any>>;
  };
}

/** Routes the SDK to `base` until the returned function is called. */
export function redirectPlivo(base: string): () => void {
  const original = axios.defaults.adapter;
  const kept = axios.getAdapter(original);
  axios.defaults.adapter = (config: { url?: string; baseURL?: string }) => {
    if (config.url) config.url = config.url.replace('https://api.plivo.com', base);
    if (config.baseURL) config.baseURL = config.baseURL.replace('https://api.plivo.com', base);
    return kept(config);
  };
  return () => {
    axios.defaults.adapter = original;
  };
}
