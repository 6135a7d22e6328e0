/**
 * Signed HTTP delivery of status callbacks (protocol.md §4.3–§4.4), through the runtime's
 * {@link AppHttpClient}.
 *
 * Per ordering key (a stream), requests are delivered one at a time in order; a retrying request
 * delays only later requests of that key. Network errors, timeouts and 5xx are retried after the
 * configured delays (1, 2, 4 s); other statuses are final. Each attempt carries a fresh nonce and
 * signature; parameters never change. Delivery is asynchronous and never blocks media. With an
 * outbox, a delivery is persisted before its first attempt and its outcome recorded.
 */
import { SIGNATURE_HEADERS, newNonce, newUuid, signV3Request } from '@callstream/protocol';
import type { Clock, TimerHandle } from '../clock/clock.js';
import { AppHttpClient, AppHttpError } from './app-http.js';

/** One callback to deliver. */
export interface CallbackRequest {
  /** Ordering key: requests with the same key are delivered in order. */
  key: string;
  url: string;
  method: 'GET' | 'POST';
  /** Parameters (all strings): form body for POST, query for GET. */
  params: Record<string, string>;
  /** Extra HTTP headers (the stream's extraHeaders, §1.2). */
  headers?: Record<string, string>;
  /** Called once when the request is finally given up, with the cause. */
  onFailure?: (cause: string) => void;
  /** Called once when delivered (2xx). */
  onDelivered?: () => void;
  /** Set when resuming a persisted delivery after a restart (not persisted again). */
  deliveryId?: string;
}

/** Header carrying the delivery id: the same on every attempt, so receivers can dedupe. */
export const DELIVERY_ID_HEADER = 'X-Callstream-Delivery-Id';

/** Durable storage of pending deliveries (the store's outbox table). */
export interface CallbackOutbox {
  /** Persists a delivery before its first attempt. */
  insert(deliveryId: string, req: CallbackRequest): Promise<void>;
  /** Records the final outcome. */
  finish(
    deliveryId: string,
    status: 'delivered' | 'failed',
    attempts: number,
    lastError: string | null,
  ): Promise<void>;
}

interface Pending {
  req: CallbackRequest;
  deliveryId: string;
  persisted: Promise<void>;
  attempts: number;
}

/** Options of an {@link HttpCallbackSender}. */
export interface HttpCallbackOptions {
  clock: Clock;
  authToken: string;
  userAgent: string;
  /** Per attempt, ms. */
  timeoutMs: number;
  /** Delays before each retry, ms; its length is the retry count. */
  retryDelaysMs: readonly number[];
  /** The runtime's client; without one the sender makes its own and closes it in {@link HttpCallbackSender.close}. */
  http?: AppHttpClient;
  /** With durable storage: deliveries are persisted before their first attempt (§4.3). */
  outbox?: CallbackOutbox;
}

/** A signed request, ready to send: the URL (with the query for GET), headers, form body (POST). */
export interface SignedRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

/**
 * Builds the request of one attempt, signed with V3 (§4.4) with a fresh nonce. Exported for tests.
 */
export function buildSignedRequest(
  req: Pick<CallbackRequest, 'url' | 'method' | 'params' | 'headers'>,
  authToken: string,
  userAgent: string,
  nonce = newNonce(),
): SignedRequest {
  const headers: Record<string, string> = { ...(req.headers ?? {}), 'User-Agent': userAgent };
  let url = req.url;
  let body: string | undefined;
  let signature: string;
  if (req.method === 'GET') {
    const u = new URL(req.url);
    for (const [k, v] of Object.entries(req.params)) u.searchParams.append(k, v);
    url = u.toString();
    signature = signV3Request('GET', url, {}, nonce, authToken);
  } else {
    body = new URLSearchParams(req.params).toString();
    headers['Content-Type'] = 'application/x-www-form-urlencoded; charset=utf-8';
    signature = signV3Request('POST', url, req.params, nonce, authToken);
  }
  headers[SIGNATURE_HEADERS.signature] = signature;
  headers[SIGNATURE_HEADERS.mainAccountSignature] = signature;
  headers[SIGNATURE_HEADERS.nonce] = nonce;
  return { url, method: req.method, headers, ...(body !== undefined ? { body } : {}) };
}

/** Delivers callbacks; see the module comment for the policy. */
export class HttpCallbackSender {
  private readonly queues = new Map<string, Pending[]>();
  private readonly timers = new Set<TimerHandle>();
  private readonly sleepers = new Set<() => void>();
  private readonly idleWaiters: Array<() => void> = [];
  private inFlight = 0;
  private closed = false;
  /** Counters for metrics and summaries. */
  readonly stats = { delivered: 0, failed: 0, attempts: 0 };

  private readonly http: AppHttpClient;
  private readonly ownsHttp: boolean;

  constructor(private readonly options: HttpCallbackOptions) {
    this.ownsHttp = options.http === undefined;
    this.http = options.http ?? new AppHttpClient({ clock: options.clock });
  }

  /**
   * Queues a request (persisting it first when an outbox is configured).
   * @returns the delivery id (sent as `X-Callstream-Delivery-Id`); ignored after {@link close}
   */
  send(req: CallbackRequest): string {
    const deliveryId = req.deliveryId ?? newUuid();
    if (this.closed) return deliveryId;
    const outbox = this.options.outbox;
    const persisted =
      outbox && req.deliveryId === undefined ? outbox.insert(deliveryId, req) : Promise.resolve();
    const p: Pending = { req, deliveryId, persisted, attempts: 0 };
    const q = this.queues.get(req.key);
    if (q) {
      q.push(p);
      return deliveryId;
    }
    this.queues.set(req.key, [p]);
    this.inFlight++;
    void this.run(req.key);
    return deliveryId;
  }

  /** Requests queued or in delivery. */
  get pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Resolves when every queue is empty. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Stops delivering: retry waits end at once and pending requests fail with `sender closed`
   * (their `onFailure` runs; with an outbox they stay pending for the next start); `idle()` then
   * resolves. A client the sender made itself is closed once the attempt in flight ends.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) this.options.clock.clearTimeout(t);
    this.timers.clear();
    for (const wake of [...this.sleepers]) wake();
    if (this.ownsHttp) void this.idle().then(() => this.http.close().catch(() => undefined));
  }

  private async run(key: string): Promise<void> {
    const q = this.queues.get(key)!;
    while (q.length > 0) {
      const p = q[0]!;
      // Closing is not a delivery failure: with an outbox the delivery stays pending for the next start.
      if (this.closed) p.req.onFailure?.('sender closed');
      else await this.deliver(p);
      q.shift();
    }
    this.queues.delete(key);
    this.inFlight--;
    if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async deliver(p: Pending): Promise<void> {
    const { req } = p;
    await p.persisted.catch(() => undefined); // a failed persist is logged by the store; deliver anyway
    const delays = this.options.retryDelaysMs;
    let cause = '';
    for (let attempt = 0; attempt <= delays.length && !this.closed; attempt++) {
      if (attempt > 0) await this.sleep(delays[attempt - 1]!);
      if (this.closed) break;
      p.attempts++;
      const r = await this.attempt(req, p.deliveryId);
      if (r.ok) {
        this.stats.delivered++;
        // Not awaited: the next callback of this key needs nothing from this row (a failed write
        // is logged by the store; the row would be re-sent after a restart with the same id).
        void this.options.outbox?.finish(p.deliveryId, 'delivered', p.attempts, null);
        req.onDelivered?.();
        return;
      }
      cause = r.cause;
      if (!r.retryable) break;
    }
    if (this.closed) {
      req.onFailure?.('sender closed');
      return;
    }
    this.stats.failed++;
    void this.options.outbox?.finish(p.deliveryId, 'failed', p.attempts, cause);
    req.onFailure?.(cause);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.timers.delete(t);
        this.sleepers.delete(wake);
        resolve();
      };
      const t = this.options.clock.setTimeout(wake, ms);
      this.timers.add(t);
      this.sleepers.add(wake);
    });
  }

  private async attempt(
    req: CallbackRequest,
    deliveryId: string,
  ): Promise<{ ok: true } | { ok: false; retryable: boolean; cause: string }> {
    this.stats.attempts++;
    const signed = buildSignedRequest(req, this.options.authToken, this.options.userAgent);
    signed.headers[DELIVERY_ID_HEADER] = deliveryId;
    try {
      // The body is read and dropped (up to 64 KiB) so the connection can be reused.
      const res = await this.http.exchange({
        ...signed,
        timeoutMs: this.options.timeoutMs,
        maxBodyBytes: 64 * 1024,
        keepBody: false,
      });
      if (res.status >= 200 && res.status < 300) return { ok: true };
      return { ok: false, retryable: res.status >= 500, cause: `HTTP ${res.status} from ${req.url}` };
    } catch (e) {
      const cause =
        e instanceof AppHttpError && e.timedOut ? e.message : `network error: ${(e as Error).message}`;
      return { ok: false, retryable: true, cause };
    }
  }
}
