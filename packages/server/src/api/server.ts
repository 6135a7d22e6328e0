/**
 * The Plivo-compatible REST API (protocol.md §2) on fastify, plus `/metrics`.
 *
 * Every body but 204 carries a fresh `api_id`; errors are `{"api_id", "error"}` with the exact
 * texts of §2; routes answer with and without a trailing slash; unknown routes are 404
 * `not found`, known routes with another method 405 `method not allowed`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { isHttpUrl, isUuidV4, newUuid, parseStreamStartBody } from '@callstream/protocol';
import { XmlSession, type XmlApplication } from '../xml/interpreter.js';
import { CallstreamError } from '../errors.js';
import { CapacityError, type AdmissionTicket } from '../call/admission.js';
import type { Runtime } from '../app.js';
import type { Records } from '../store/records.js';
import type { Metrics } from './metrics.js';
import { formatSessionStart, streamObject } from './format.js';
import { FileCallerLeg } from '../ingress/file/file-leg.js';

/** What the API needs. */
export interface ApiDeps {
  runtime: Runtime;
  records: Records;
  metrics: Metrics;
  /** Enables the `SimulatedCall` extension (tests and development without SIP). */
  simulatedCalls?: boolean;
  /**
   * Outbound SIP dialling (make call to a SIP URI or a trunk number); absent without SIP ingress.
   * @throws CallstreamError `invalid_parameters` for an unusable target
   */
  dial?: (o: {
    to: string;
    from: string;
    callId: string;
    app: XmlApplication;
    ringTimeoutMs?: number;
  }) => Promise<void>;
}

type Req = FastifyRequest<{
  Params: Record<string, string>;
  Querystring: Record<string, string>;
  Body: unknown;
}>;

const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'] as const;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** A simulated party's audio: a 440 Hz tone at 8 kHz (looped by the leg). */
function toneSamples(seconds: number): Int16Array {
  const tone = new Int16Array(Math.round(seconds * 8000));
  for (let i = 0; i < tone.length; i++) tone[i] = Math.round(4000 * Math.sin((2 * Math.PI * 440 * i) / 8000));
  return tone;
}

/** Builds the HTTP server (not listening). */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { runtime, records, metrics } = deps;
  const config = runtime.config;
  const app = Fastify({
    logger: false,
    bodyLimit: 1024 * 1024,
    routerOptions: { ignoreTrailingSlash: true },
  });
  await app.register(formbody);
  // JSON bodies: an empty body (the Node SDK sends none or `{}` on GET/DELETE) is `{}`.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body).trim();
    if (text === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch {
      const e = new Error('invalid JSON body') as Error & { statusCode: number };
      e.statusCode = 400;
      done(e, undefined);
    }
  });

  const send = (reply: FastifyReply, status: number, body?: Record<string, unknown>) => {
    if (status === 204) return reply.code(204).send();
    return reply.code(status).send({ api_id: newUuid(), ...body });
  };
  const fail = (reply: FastifyReply, status: number, error: string) => send(reply, status, { error });
  /** HTTP 503 for a call refused by admission control, with `Retry-After` when the limit says when. */
  const refused = (reply: FastifyReply, err: CapacityError) => {
    if (err.retryAfterS !== null) reply.header('Retry-After', String(err.retryAfterS));
    return fail(reply, err.status, err.message);
  };
  /** Admits a call (config `calls`): its ticket, or the refusal. */
  const admitCall = (): AdmissionTicket | CapacityError => {
    try {
      return runtime.admission.admit();
    } catch (e) {
      if (e instanceof CapacityError) return e;
      throw e;
    }
  };

  const expected = digest(`${config.authId}:${config.authToken}`);
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    const header = req.headers.authorization ?? '';
    let ok = false;
    if (header.startsWith('Basic ')) {
      const given = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
      ok = timingSafeEqual(digest(given), expected);
    }
    const pathAccount = /^\/v1\/Account\/([^/?]+)/.exec(req.url)?.[1];
    if (!ok || (pathAccount !== undefined && decodeURIComponent(pathAccount) !== config.authId)) {
      reply.header('WWW-Authenticate', 'Basic realm="callstream"');
      return fail(reply, 401, 'authentication failed');
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 413) return fail(reply, 413, 'request body too large');
    if (status >= 400 && status < 500) return fail(reply, status, err.message || 'bad request');
    runtime.logger.error({ err, url: req.url }, 'REST handler failed');
    return fail(reply, 500, 'internal error');
  });
  app.setNotFoundHandler((_req, reply) => fail(reply, 404, 'not found'));

  /** Registers a path's handlers; other methods answer 405. */
  const route = (
    url: string,
    handlers: Partial<Record<(typeof METHODS)[number], (req: Req, reply: FastifyReply) => unknown>>,
  ) => {
    for (const method of METHODS) {
      const h = handlers[method];
      app.route({
        method,
        url,
        handler: (req, reply) => (h ? h(req as Req, reply) : fail(reply, 405, 'method not allowed')),
      });
    }
  };

  const base = '/v1/Account/:authId';
  /** XML sessions of calls that run a document, by call UUID. */
  const sessions = runtime.xmlSessions;
  /** A call UUID from the path: 404 unless it is a v4 UUID we have seen. */
  const knownCall = async (req: Req) => {
    const id = req.params.callUuid ?? '';
    if (!isUuidV4(id)) return null;
    if (records.liveCalls.has(id)) return id;
    await records.store.flush();
    return (await records.store.getCall(id)) ? id : null;
  };
  const body = (req: Req): Record<string, unknown> =>
    req.body && typeof req.body === 'object' && !Array.isArray(req.body)
      ? (req.body as Record<string, unknown>)
      : {};

  // ---- streams (§2.2)
  route(`${base}/Call/:callUuid/Stream`, {
    POST: async (req, reply) => {
      const call = records.liveCalls.get(req.params.callUuid ?? '');
      if (!call || call.ended) return fail(reply, 404, 'call not found');
      const r = parseStreamStartBody(body(req), { strict: config.strict });
      if (!r.ok) return fail(reply, 400, r.error);
      if (call.activeStreams().some((s) => s.params.serviceUrl === r.params.serviceUrl)) {
        return fail(reply, 400, 'an active stream already exists for this service_url');
      }
      const stream = call.startStream(r.params);
      for (const w of r.warnings) stream.debugLog.add('error', w.code, w.message);
      return send(reply, 202, { message: 'audio streaming started', stream_id: stream.streamId });
    },
    GET: async (req, reply) => {
      const callUuid = await knownCall(req);
      if (!callUuid) return fail(reply, 404, 'call not found');
      const limit = req.query.limit === undefined ? 20 : Number(req.query.limit);
      const offset = req.query.offset === undefined ? 0 : Number(req.query.offset);
      if (
        !/^\d+$/.test(String(req.query.limit ?? '20')) ||
        !Number.isInteger(limit) ||
        limit < 1 ||
        limit > 20
      ) {
        return fail(reply, 400, 'limit must be an integer between 1 and 20');
      }
      if (!/^\d+$/.test(String(req.query.offset ?? '0')) || !Number.isSafeInteger(offset)) {
        return fail(reply, 400, 'offset must be a non-negative integer');
      }
      const page = await records.listStreams(callUuid, limit, offset);
      const path = `/v1/Account/${config.authId}/Call/${callUuid}/Stream/`;
      return send(reply, 200, {
        meta: {
          limit,
          next: offset + limit < page.total ? `${path}?limit=${limit}&offset=${offset + limit}` : null,
          offset,
          previous: offset > 0 ? `${path}?limit=${limit}&offset=${Math.max(0, offset - limit)}` : null,
          total_count: page.total,
        },
        objects: page.rows.map((row) => streamObject(row, config)),
      });
    },
    DELETE: async (req, reply) => {
      const callUuid = await knownCall(req);
      if (!callUuid) return fail(reply, 404, 'call not found');
      const call = records.liveCalls.get(callUuid);
      for (const s of call?.activeStreams() ?? []) s.stop('api_request');
      return send(reply, 204);
    },
  });

  /** The record of the path's stream, or `null` after answering 404 (unknown call or stream). */
  const pathStream = async (req: Req, reply: FastifyReply) => {
    const callUuid = await knownCall(req);
    if (!callUuid) {
      await fail(reply, 404, 'call not found');
      return null;
    }
    const id = req.params.streamId ?? '';
    const row = isUuidV4(id) ? await records.streamRecord(callUuid, id) : undefined;
    if (!row) await fail(reply, 404, 'stream not found');
    return row ?? null;
  };

  route(`${base}/Call/:callUuid/Stream/:streamId`, {
    GET: async (req, reply) => {
      const row = await pathStream(req, reply);
      return row ? send(reply, 200, streamObject(row, config)) : reply;
    },
    DELETE: async (req, reply) => {
      const callUuid = await knownCall(req);
      if (!callUuid) return fail(reply, 404, 'call not found');
      const stream = records.liveStream(req.params.streamId ?? '');
      if (!stream || stream.call.callId !== callUuid || stream.ended)
        return fail(reply, 400, 'No active stream found');
      stream.stop('api_request');
      return send(reply, 204);
    },
  });

  route(`${base}/Call/:callUuid/Stream/:streamId/DebugLog`, {
    GET: async (req, reply) => {
      const row = await pathStream(req, reply);
      return row ? send(reply, 200, { stream_id: row.stream_id, objects: JSON.parse(row.debug_log) }) : reply;
    },
  });

  // ---- calls (§2.4)
  route(`${base}/Call`, {
    GET: async (req, reply) => {
      if (req.query.status !== 'live') return fail(reply, 400, 'only status=live is supported');
      return send(reply, 200, { calls: [...records.liveCalls.keys()] });
    },
    POST: async (req, reply) => {
      const b = body(req);
      for (const name of ['from', 'to', 'answer_url']) {
        const v = b[name];
        if (v === undefined || v === null || String(v).trim() === '')
          return fail(reply, 400, `${name} is required`);
      }
      if (String(b.to).includes('<')) return fail(reply, 400, 'bulk calls are not supported');
      const answerUrl = String(b.answer_url).trim();
      if (!isHttpUrl(answerUrl)) return fail(reply, 400, 'answer_url must be an http:// or https:// URL');
      const to = String(b.to).trim();
      const method = (v: unknown) => (String(v ?? 'POST').toUpperCase() === 'GET' ? 'GET' : 'POST');
      const app: XmlApplication = {
        answer: { url: answerUrl, method: method(b.answer_method) },
        fallback: b.fallback_url ? { url: String(b.fallback_url), method: method(b.fallback_method) } : null,
        hangup: b.hangup_url ? { url: String(b.hangup_url), method: method(b.hangup_method) } : null,
      };
      // Routing: `sim:<anything>` reaches a simulated party (when enabled); anything else is dialled over SIP.
      if (!to.startsWith('sim:')) {
        if (!deps.dial) return fail(reply, 501, `cannot dial "${to}": SIP is disabled (config sip.enabled)`);
        const ringTimeout = b.ring_timeout === undefined ? undefined : Number(b.ring_timeout);
        if (
          ringTimeout !== undefined &&
          !(Number.isInteger(ringTimeout) && ringTimeout >= 5 && ringTimeout <= 300)
        )
          return fail(reply, 400, 'ring_timeout must be an integer between 5 and 300 (seconds)');
        const callId = newUuid();
        try {
          await deps.dial({
            to,
            from: String(b.from).trim(),
            callId,
            app,
            ...(ringTimeout ? { ringTimeoutMs: ringTimeout * 1000 } : {}),
          });
        } catch (e) {
          if (e instanceof CallstreamError && e.code === 'invalid_parameters')
            return fail(reply, 400, e.message);
          if (e instanceof CapacityError) return refused(reply, e);
          return fail(reply, 503, `cannot dial "${to}": ${(e as Error).message}`);
        }
        return send(reply, 201, { message: 'call fired', request_uuid: callId });
      }
      if (!deps.simulatedCalls)
        return fail(reply, 400, 'sim: targets need the SimulatedCall extension (--simulated-calls)');
      const admission = admitCall();
      if (admission instanceof CapacityError) return refused(reply, admission);
      const leg = new FileCallerLeg(runtime.mediaClock, toneSamples(1), { loop: true });
      leg.play();
      const call = runtime.newCall(leg, { from: String(b.from), to, direction: 'outbound' }, admission);
      const session = new XmlSession(runtime, call, app);
      session.start();
      return send(reply, 201, { message: 'call fired', request_uuid: call.info.callId });
    },
  });

  route(`${base}/Call/:callUuid`, {
    GET: async (req, reply) => {
      if (req.query.status !== 'live') return fail(reply, 400, 'only status=live is supported');
      const call = records.liveCalls.get(req.params.callUuid ?? '');
      if (!call) return fail(reply, 404, 'call not found');
      return send(reply, 200, {
        call_status: 'in-progress',
        call_uuid: call.info.callId,
        caller_name: '',
        direction: call.info.direction,
        from: call.info.from,
        request_uuid: call.info.callId,
        session_start: formatSessionStart(call.startedAt),
        to: call.info.to,
      });
    },
    POST: async (req, reply) => {
      const call = records.liveCalls.get(req.params.callUuid ?? '');
      if (!call) return fail(reply, 404, 'call not found');
      const b = body(req);
      const legs = String(b.legs ?? 'aleg').toLowerCase();
      if (legs !== 'aleg') return fail(reply, 400, 'only legs=aleg is supported');
      if (b.aleg_url === undefined || String(b.aleg_url).trim() === '')
        return fail(reply, 400, 'aleg_url is required');
      const url = String(b.aleg_url).trim();
      if (!isHttpUrl(url)) return fail(reply, 400, 'aleg_url must be an http:// or https:// URL');
      const source = {
        url,
        method:
          String(b.aleg_method ?? 'POST').toUpperCase() === 'GET' ? ('GET' as const) : ('POST' as const),
      };
      const running = sessions.get(call.info.callId);
      if (running) void running.transfer(source);
      else {
        // A call with no document yet (SimulatedCall): the new document becomes its program.
        const session = new XmlSession(runtime, call, { answer: source });
        session.start();
      }
      return send(reply, 202, { message: 'call transferred' });
    },
    DELETE: async (req, reply) => {
      const call = records.liveCalls.get(req.params.callUuid ?? '');
      if (!call) return fail(reply, 404, 'call not found');
      call.hangup('NORMAL_CLEARING');
      return send(reply, 204);
    },
  });

  // ---- callstream extension: simulated calls (development and tests without SIP)
  if (deps.simulatedCalls) {
    route(`${base}/SimulatedCall`, {
      POST: async (req, reply) => {
        const b = body(req);
        const seconds = Number(b.duration ?? 3600);
        if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86400)
          return fail(reply, 400, 'duration must be 1-86400 seconds');
        const admission = admitCall();
        if (admission instanceof CapacityError) return refused(reply, admission);
        const leg = new FileCallerLeg(runtime.mediaClock, toneSamples(1), { loop: true });
        leg.play();
        const call = runtime.newCall(
          leg,
          {
            from: String(b.from ?? 'simulated-caller'),
            to: String(b.to ?? 'callstream'),
            direction: 'inbound',
          },
          admission,
        );
        const timer = runtime.clock.setTimeout(() => call.hangup('NORMAL_CLEARING'), seconds * 1000);
        void call.done.then(() => runtime.clock.clearTimeout(timer));
        return send(reply, 201, { message: 'call answered', call_uuid: call.info.callId });
      },
    });
  }

  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', metrics.registry.contentType);
    return metrics.text();
  });
  return app;
}
