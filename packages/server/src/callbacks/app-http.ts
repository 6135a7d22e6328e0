/**
 * Outgoing HTTP to the application: answer, fallback, redirect and transfer documents (§1.1),
 * status callbacks and the hangup URL (§4.3). One keep-alive connection pool per runtime, driven
 * by undici's `request` API rather than the global `fetch`: a callback POST costs ~0.2–0.3 ms of
 * CPU through `request` against ~1 ms through `fetch` (WHATWG Request/Response/streams per call;
 * measured here with 3000 POSTs to a loopback server), and a checkpoint callback is sent per
 * `playedStream` — at 200 streams that was the largest non-media cost of the process.
 *
 * Redirects are never followed (a 3xx is an answer like any other status). The per-attempt
 * timeout runs on the injected clock, so tests drive it with a fake clock.
 */
import { Agent, errors as undiciErrors } from 'undici';
import type { Clock } from '../clock/clock.js';

/** One request to the app. */
export interface AppHttpRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  /** Form body (POST). */
  body?: string;
  /** Whole exchange (connect, headers, body), ms. */
  timeoutMs: number;
  /** Body bytes read at most; a larger body is cut off (`overLimit`) and its connection closed. */
  maxBodyBytes: number;
  /** false: the body is read and dropped (so the connection can be reused), `body` is empty. */
  keepBody: boolean;
}

/** The app's answer. */
export interface AppHttpResponse {
  status: number;
  /** `content-type` header ('' when absent). */
  contentType: string;
  /** The body read (empty unless `keepBody`). */
  body: Buffer;
  /** The body was larger than `maxBodyBytes` (what was read is in `body`). */
  overLimit: boolean;
}

/** Why no response was had: a timeout or a network failure (both worth a retry). */
export class AppHttpError extends Error {
  /**
   * @param timedOut the attempt's `timeoutMs` passed
   */
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = 'AppHttpError';
  }
}

/** Options of an {@link AppHttpClient}. */
export interface AppHttpClientOptions {
  clock: Clock;
  /** Idle keep-alive connections are closed after this long, ms (4000; a server's `Keep-Alive: timeout` hint wins when shorter). */
  keepAliveTimeoutMs?: number;
}

/** The runtime's HTTP client toward apps; see the module comment. */
export class AppHttpClient {
  private readonly agent: Agent;

  constructor(private readonly options: AppHttpClientOptions) {
    this.agent = new Agent({
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 4000,
      // Our own timer bounds the exchange; undici's own timeouts must not fire first.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /**
   * Sends one request and reads its answer.
   * @throws AppHttpError when no complete answer arrived: `timedOut` after `timeoutMs`, else a network
   *   failure (refused, reset, DNS, bad URL) with the cause's message
   */
  async exchange(req: AppHttpRequest): Promise<AppHttpResponse> {
    const controller = new AbortController();
    const timer = this.options.clock.setTimeout(() => controller.abort(), req.timeoutMs);
    try {
      const url = new URL(req.url);
      const res = await this.agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        headers: req.headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        signal: controller.signal,
      });
      const contentType = headerValue(res.headers['content-type']);
      if (!req.keepBody) {
        // dump() reads up to the limit and drops the chunks; past it the connection is closed. The
        // status is the answer: a body that fails or times out after it does not undo it.
        await res.body.dump({ limit: req.maxBodyBytes }).catch(() => undefined);
        return { status: res.statusCode, contentType, body: EMPTY, overLimit: false };
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > req.maxBodyBytes) {
          res.body.destroy();
          return { status: res.statusCode, contentType, body: Buffer.concat(chunks), overLimit: true };
        }
        chunks.push(chunk);
      }
      return { status: res.statusCode, contentType, body: Buffer.concat(chunks), overLimit: false };
    } catch (e) {
      if (controller.signal.aborted) throw new AppHttpError(`timeout after ${req.timeoutMs} ms`, true);
      throw new AppHttpError(describe(e), false);
    } finally {
      this.options.clock.clearTimeout(timer);
    }
  }

  /**
   * Closes every connection; requests still in flight fail as network errors (callers drain first:
   * the server waits, bounded, for callbacks before it closes the runtime). Later requests fail too.
   */
  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

const EMPTY = Buffer.alloc(0);

function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

/** The most telling message of a failure (undici wraps socket errors; URL errors are TypeErrors). */
function describe(e: unknown): string {
  const err = e as Error & { cause?: unknown };
  if (err instanceof undiciErrors.UndiciError && err.cause instanceof Error) return err.cause.message;
  return err.message ?? String(e);
}
