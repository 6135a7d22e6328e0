/**
 * Fetching Plivo XML from the app (protocol.md §1.1): answer, fallback, redirect and transfer URLs.
 * Signed (V3), `User-Agent: callstream/<v>`, a timeout per attempt, at most `maxBytes` of body,
 * 3 attempts, then the fallback URL likewise.
 */
import { parsePlivoXml, type XmlElement } from '@callstream/protocol';
import { AppHttpError, type AppHttpClient } from '../callbacks/app-http.js';
import { buildSignedRequest } from '../callbacks/http-callbacks.js';

/** Where and how to fetch. */
export interface DocumentSource {
  url: string;
  method: 'GET' | 'POST';
}

/** Options of {@link fetchDocument}. */
export interface FetchDocumentOptions {
  /** The runtime's client toward apps. */
  http: AppHttpClient;
  authToken: string;
  userAgent: string;
  /** Per attempt, ms (10 000). */
  timeoutMs: number;
  /** Largest accepted body, bytes (100 KB). */
  maxBytes: number;
  /** Attempts per URL (3). */
  attempts?: number;
}

/** A fetched document or why none could be had (every attempt's cause). */
export type FetchDocumentResult =
  { ok: true; elements: XmlElement[]; url: string } | { ok: false; errors: string[] };

async function attempt(
  source: DocumentSource,
  params: Record<string, string>,
  o: FetchDocumentOptions,
): Promise<XmlElement[]> {
  const signed = buildSignedRequest(
    { url: source.url, method: source.method, params },
    o.authToken,
    o.userAgent,
  );
  let res;
  try {
    res = await o.http.exchange({
      ...signed,
      timeoutMs: o.timeoutMs,
      maxBodyBytes: o.maxBytes,
      keepBody: true,
    });
  } catch (e) {
    if (e instanceof AppHttpError && e.timedOut) throw new Error(`no response within ${o.timeoutMs} ms`);
    throw e;
  }
  if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
  if (res.overLimit) throw new Error(`response larger than ${o.maxBytes} bytes`);
  const parsed = parsePlivoXml(res.body.toString('utf8'));
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.elements;
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
