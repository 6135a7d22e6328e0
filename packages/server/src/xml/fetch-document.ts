/**
 * Fetching Plivo XML from the app (protocol.md §1.1): answer, fallback, redirect and transfer URLs.
 * Signed (V3), `User-Agent: callstream/<v>`, a timeout per attempt, at most `maxBytes` of body,
 * 3 attempts, then the fallback URL likewise.
 */
import { parsePlivoXml, type XmlElement } from '@callstream/protocol';
import { buildSignedRequest, readBody } from '../callbacks/http-callbacks.js';
import type { Clock } from '../clock/clock.js';

/** Where and how to fetch. */
export interface DocumentSource {
  url: string;
  method: 'GET' | 'POST';
}

/** Options of {@link fetchDocument}. */
export interface FetchDocumentOptions {
  clock: Clock;
  authToken: string;
  userAgent: string;
  /** Per attempt, ms (10 000). */
  timeoutMs: number;
  /** Largest accepted body, bytes (100 KB). */
  maxBytes: number;
  /** Attempts per URL (3). */
  attempts?: number;
  fetch?: typeof fetch;
}

/** A fetched document or why none could be had (every attempt's cause). */
export type FetchDocumentResult =
  { ok: true; elements: XmlElement[]; url: string } | { ok: false; errors: string[] };

async function readLimited(res: Response, maxBytes: number): Promise<string> {
  const { data, overLimit } = await readBody(res, maxBytes, true);
  if (overLimit) throw new Error(`response larger than ${maxBytes} bytes`);
  return data.toString('utf8');
}

async function attempt(
  source: DocumentSource,
  params: Record<string, string>,
  o: FetchDocumentOptions,
): Promise<XmlElement[]> {
  const { url, init } = buildSignedRequest(
    { url: source.url, method: source.method, params },
    o.authToken,
    o.userAgent,
  );
  const controller = new AbortController();
  const timer = o.clock.setTimeout(() => controller.abort(), o.timeoutMs);
  try {
    const res = await (o.fetch ?? fetch)(url, { ...init, signal: controller.signal, redirect: 'manual' });
    if (res.status < 200 || res.status >= 300) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`HTTP ${res.status}`);
    }
    const parsed = parsePlivoXml(await readLimited(res, o.maxBytes));
    if (!parsed.ok) throw new Error(parsed.error);
    return parsed.elements;
  } catch (e) {
    if (controller.signal.aborted) throw new Error(`no response within ${o.timeoutMs} ms`);
    const err = e as Error & { cause?: Error };
    throw new Error(err.cause?.message ?? err.message);
  } finally {
    o.clock.clearTimeout(timer);
  }
}

/**
 * Fetches and parses a document from `primary`, then from `fallback` (if given). Never throws.
 * @param params request parameters (form body for POST, query for GET)
 */
export async function fetchDocument(
  primary: DocumentSource,
  fallback: DocumentSource | null,
  params: Record<string, string>,
  options: FetchDocumentOptions,
): Promise<FetchDocumentResult> {
  const errors: string[] = [];
  for (const source of fallback ? [primary, fallback] : [primary]) {
    for (let i = 0; i < (options.attempts ?? 3); i++) {
      try {
        return { ok: true, elements: await attempt(source, params, options), url: source.url };
      } catch (e) {
        errors.push(`${source.method} ${source.url} attempt ${i + 1}: ${(e as Error).message}`);
      }
    }
  }
  return { ok: false, errors };
}
