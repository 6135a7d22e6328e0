/**
 * SIP ingress (issue 3): a user agent server over our own UDP/TCP transport with the sip.js core
 * for transactions and dialogs (design.md "Dependencies"). An INVITE is checked (source allow
 * list, optional digest authentication, routing to an application by the Request-URI user), its
 * SDP answered (PCMU/PCMA + telephone-event), 180 Ringing sent, the application's answer URL
 * fetched, and only then answered with 200 OK: the call runs the document through the XML
 * interpreter. CANCEL before answer → 487; OPTIONS → 200; unknown methods → 405 (sip.js core).
 *
 * Final responses when an INVITE cannot become a call:
 * 403 source not allowed · 401 digest challenge · 404 no application for the called user ·
 * 488 no acceptable codec / no SDP offer · 400 unparseable SDP · 480 answer and fallback URLs failed ·
 * 503 no RTP port free, shutting down, or refused by admission control (config `calls`; the rate
 * and load limits add `Retry-After`, call/admission.ts).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { BlockList, isIPv4 } from 'node:net';
import os from 'node:os';
import { Core, Grammar, URI } from 'sip.js';
import type { Logger } from 'pino';
import type { Runtime } from '../../app.js';
import type { Call, CallInfo } from '../../call/call.js';
import type { CallCodec } from '../../media/codec.js';
import type { XmlElement } from '@callstream/protocol';
import type { Config } from '../../config/config.js';
import { USER_AGENT } from '../../version.js';
import { fetchAnswerDocument, XmlSession, type XmlApplication } from '../../xml/interpreter.js';
import { RtpSession } from '../rtp/rtp-session.js';
import { InlineUdpIo, WorkerUdpIo, type UdpIo } from '../rtp/udp-io.js';
import { DigestAuthenticator } from './digest.js';
import { answerOffer, makeOffer, readAnswer, type LocalMedia } from './sdp.js';
import { CallstreamError } from '../../errors.js';
import { CapacityError } from '../../call/admission.js';
import { SipLeg } from './sip-leg.js';
import { SipTransport, type SipSource } from './transport.js';

/** A call's RTP session before and after its leg exists (see {@link SipServer.openMedia}). */
interface OpenMedia {
  rtp: RtpSession;
  local: LocalMedia;
  leg: SipLeg | null;
  call: Call | null;
}

/** One configured application (config `applications[]`). */
export type ApplicationConfig = Config['applications'][number];

/** Counters of the SIP server (exported on /metrics by the caller if wanted). */
export interface SipServerStats {
  invites: number;
  answered: number;
  cancelled: number;
  /** Final error responses to INVITEs by status code. */
  rejected: Record<number, number>;
}

/** The address advertised in Via/Contact/SDP for a bind address. */
export function advertisedAddress(config: Config['sip']): string {
  if (config.advertisedHost) return config.advertisedHost;
  if (config.host !== '0.0.0.0' && config.host !== '::') return config.host;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** A running SIP server. */
export class SipServer {
  readonly stats: SipServerStats = { invites: 0, answered: 0, cancelled: 0, rejected: {} };
  /** RTP counters of legs that have ended (live legs are added at read time). */
  private readonly rtpEnded = { packetsIn: 0, packetsOut: 0, lost: 0, late: 0, rejected: 0 };
  /** Live legs by SIP Call-ID. */
  readonly legs = new Map<string, SipLeg>();
  private readonly cores = new Map<'udp' | 'tcp', Core.UserAgentCore>();
  /** Address-of-record of each core: its user follows the request being handed in (see onRequest). */
  private readonly aors = new Map<'udp' | 'tcp', URI>();
  private readonly sources = new WeakMap<object, SipSource>();
  private readonly allow: BlockList | null;
  private readonly auth: DigestAuthenticator | null;
  private readonly logger: Logger;
  private closing = false;
  /** Where the calls' RTP/RTCP sockets live (`sip.rtpIoThread`). */
  private readonly udpIo: UdpIo;
  /** Address in Via, Contact, SDP. */
  readonly address: string;

  private constructor(
    private readonly runtime: Runtime,
    readonly transport: SipTransport,
    private readonly fallbackApplication: ApplicationConfig | null,
  ) {
    const sip = runtime.config.sip;
    this.logger = runtime.logger.child({ component: 'sip' });
    this.address = advertisedAddress(sip);
    if (sip.allowFrom.length) {
      this.allow = new BlockList();
      for (const entry of sip.allowFrom) {
        const [ip, bits] = entry.split('/');
        const type = isIPv4(ip ?? '') ? 'ipv4' : 'ipv6';
        if (bits !== undefined) this.allow.addSubnet(ip!, Number(bits), type);
        else this.allow.addAddress(ip!, type);
      }
    } else this.allow = null;
    this.auth = sip.auth ? new DigestAuthenticator(sip.auth, () => runtime.clock.now()) : null;
    this.udpIo = sip.rtpIoThread
      ? new WorkerUdpIo((err) =>
          this.logger.error(
            { err },
            'RTP I/O thread failed: its calls lose media; new calls start a new one',
          ),
        )
      : new InlineUdpIo();
  }

  /**
   * Binds SIP on `config.sip` (port 0 = any; see {@link SipServer.port}).
   * @throws Error if the port cannot be bound
   */
  static async start(
    runtime: Runtime,
    options: {
      /** Takes calls no configured application takes (the built-in demo app of `serve --demo`). */
      fallbackApplication?: ApplicationConfig;
    } = {},
  ): Promise<SipServer> {
    const sip = runtime.config.sip;
    const transport = new SipTransport({
      host: sip.host,
      port: sip.port,
      transports: sip.transports,
      clock: runtime.clock,
      logger: runtime.logger.child({ component: 'sip-transport' }),
    });
    const server = new SipServer(runtime, transport, options.fallbackApplication ?? null);
    await transport.listen({
      onRequest: (message, source) => server.onRequest(message, source),
      onResponse: (message, source) =>
        server.core(source.transport).receiveIncomingResponseFromTransport(message),
    });
    for (const kind of sip.transports) server.cores.set(kind, server.makeCore(kind));
    server.logger.info(
      { port: transport.port, address: server.address, transports: sip.transports },
      'SIP listening',
    );
    return server;
  }

  /** The bound SIP port. */
  get port(): number {
    return this.transport.port;
  }

  private core(kind: 'udp' | 'tcp'): Core.UserAgentCore {
    return this.cores.get(kind) ?? [...this.cores.values()][0]!;
  }

  private makeCore(kind: 'udp' | 'tcp'): Core.UserAgentCore {
    const loggerFactory = new Core.LoggerFactory();
    loggerFactory.builtinEnabled = false;
    loggerFactory.level = Core.Levels.warn;
    loggerFactory.connector = (level, category, _label, content) =>
      this.logger.debug({ category, level }, String(content));
    const host = this.address;
    const port = this.transport.port;
    const contactUri = new URI('sip', 'callstream', host, port, kind === 'tcp' ? { transport: 'tcp' } : {});
    const aor = Grammar.URIParse(`sip:callstream@${host}`) ?? contactUri;
    this.aors.set(kind, aor);
    const sipTransport: Core.Transport = {
      protocol: kind.toUpperCase(),
      send: (message: string) => this.transport.send(kind, message),
    };
    return new Core.UserAgentCore(
      {
        aor,
        contact: {
          pubGruu: undefined,
          tempGruu: undefined,
          uri: contactUri,
          toString: () => `<${contactUri.toString()}>`,
        },
        displayName: '',
        loggerFactory,
        hackViaTcp: false,
        routeSet: [],
        sipjsId: randomBytes(3).toString('hex'),
        supportedOptionTags: [],
        supportedOptionTagsResponse: [],
        userAgentHeaderFieldValue: USER_AGENT,
        viaForceRport: true,
        viaHost: `${host}:${port}`,
        authenticationFactory: () => {
          const trunk = this.runtime.config.sip.trunk;
          return trunk?.username
            ? new Core.DigestAuthentication(loggerFactory, undefined, trunk.username, trunk.password ?? '')
            : undefined;
        },
        transportAccessor: () => sipTransport,
      },
      {
        onInvite: (request) => {
          this.onInvite(request).catch((err: unknown) => {
            this.logger.error({ err, sipCallId: request.message.callId }, 'INVITE handling failed');
            this.reject(request, 500, 'internal error');
          });
        },
      },
    );
  }

  private onRequest(message: Core.IncomingRequestMessage, source: SipSource): void {
    this.sources.set(message, source);
    // The core refuses (404) a Request-URI whose user is not its address-of-record (RFC 3261
    // §8.2.2.1). We serve every user and route by application ourselves, so the core's AOR takes
    // the request's user for the synchronous hand-over.
    const aor = this.aors.get(source.transport);
    if (aor && message.ruri?.user !== undefined) aor.user = message.ruri.user;
    try {
      this.core(source.transport).receiveIncomingRequestFromTransport(message);
    } catch (err) {
      this.logger.warn({ err, method: message.method }, 'SIP request failed in the core');
    }
  }

  private reject(
    request: Core.IncomingInviteRequest,
    statusCode: number,
    reason: string,
    extraHeaders: string[] = [],
  ): void {
    this.stats.rejected[statusCode] = (this.stats.rejected[statusCode] ?? 0) + 1;
    this.logger.info({ callId: request.message.callId, statusCode, reason }, 'INVITE rejected');
    try {
      request.reject({
        statusCode,
        extraHeaders: [...extraHeaders, `Warning: 399 callstream "${reason.replace(/["\r\n]/g, "'")}"`],
      });
    } catch {
      // the transaction already ended (CANCEL raced us)
    }
  }

  /** Routes a called user to an application (config `applications`, `defaultApplication`). */
  route(calledUser: string): Config['applications'][number] | null {
    const apps = this.runtime.config.applications;
    const normal = (s: string) => s.replace(/^\+/, '');
    const hit = apps.find((a) => a.numbers.some((n) => normal(n) === normal(calledUser)));
    if (hit) return hit;
    const def = this.runtime.config.defaultApplication;
    if (def) return apps.find((a) => a.name === def) ?? null;
    return this.fallbackApplication;
  }

  private async onInvite(request: Core.IncomingInviteRequest): Promise<void> {
    const message = request.message;
    const source = this.sources.get(message);
    this.stats.invites++;
    if (this.closing) return this.reject(request, 503, 'shutting down');
    if (this.allow && source && !this.allow.check(source.address, isIPv4(source.address) ? 'ipv4' : 'ipv6')) {
      return this.reject(request, 403, `source ${source.address} is not allowed`);
    }
    if (this.auth) {
      const check = this.auth.verify('INVITE', message.getHeader('authorization'));
      if (!check.ok) {
        if (check.reason !== 'missing')
          this.logger.warn(
            { callId: message.callId, reason: check.reason },
            'SIP digest authentication failed',
          );
        return this.reject(request, 401, `authentication required (${check.reason})`, [
          `WWW-Authenticate: ${this.auth.challenge(check.stale)}`,
        ]);
      }
    }
    const calledUser = message.ruri?.user ?? message.to.uri.user ?? '';
    const appConfig = this.route(calledUser);
    if (!appConfig) return this.reject(request, 404, `no application takes calls to "${calledUser}"`);
    const contentType = (message.getHeader('content-type') ?? '').toLowerCase();
    if (!message.body || !contentType.startsWith('application/sdp')) {
      return this.reject(request, 488, 'an SDP offer in the INVITE is required');
    }

    let media: OpenMedia;
    try {
      media = await this.openMedia(message.callId);
    } catch (err) {
      const retryAfter = err instanceof CapacityError ? err.retryAfterS : null;
      return this.reject(
        request,
        503,
        (err as Error).message,
        retryAfter ? [`Retry-After: ${retryAfter}`] : [],
      );
    }
    try {
      await this.answerInvite(request, media, appConfig, calledUser, source);
    } catch (err) {
      if (!media.call) media.rtp.close(); // never leak the ports, nor the call's admission place
      throw err;
    }
  }

  /** The rest of an INVITE once its media is open: SDP answer, 180, answer URL, 200 and the call. */
  private async answerInvite(
    request: Core.IncomingInviteRequest,
    media: OpenMedia,
    appConfig: ApplicationConfig,
    calledUser: string,
    source: SipSource | undefined,
  ): Promise<void> {
    const message = request.message;
    const { rtp, local } = media;
    const negotiated = answerOffer(message.body, local);
    if (!negotiated.ok) {
      rtp.close();
      return this.reject(request, negotiated.status, negotiated.reason);
    }
    rtp.setMedia(negotiated.media);

    let cancelled = false;
    request.delegate = {
      onCancel: () => {
        cancelled = true;
        this.stats.cancelled++;
        rtp.close();
        this.reject(request, 487, 'request terminated by CANCEL');
      },
    };
    try {
      request.progress({ statusCode: 180 });
    } catch {
      rtp.close();
      return;
    }

    const info: CallInfo = {
      callId: crypto.randomUUID(),
      from: partyOf(message.from.uri),
      to: calledUser,
      direction: 'inbound',
    };
    const params: Record<string, string> = { CallerName: message.from.displayName ?? '' };
    for (const [name, values] of Object.entries(message.headers as Record<string, Array<{ raw: string }>>)) {
      if (/^x-/i.test(name) && values[0]) params[`SIP-H-${name}`] = values[0].raw;
    }
    const method = (m: string) => (m === 'GET' ? 'GET' : 'POST') as 'GET' | 'POST';
    const app: XmlApplication = {
      answer: { url: appConfig.answerUrl, method: method(appConfig.answerMethod) },
      fallback: appConfig.fallbackUrl
        ? { url: appConfig.fallbackUrl, method: method(appConfig.fallbackMethod) }
        : null,
      hangup: appConfig.hangupUrl
        ? { url: appConfig.hangupUrl, method: method(appConfig.hangupMethod) }
        : null,
      params,
    };
    const doc = await fetchAnswerDocument(this.runtime, info, app);
    if (cancelled) return;
    if (!doc.ok) {
      rtp.close();
      this.logger.warn({ callId: info.callId, errors: doc.errors }, 'answer URL failed; call not answered');
      return this.reject(request, 480, `answer URL failed: ${doc.errors.at(-1) ?? 'unknown'}`);
    }
    if (this.closing) {
      rtp.close();
      return this.reject(request, 503, 'shutting down');
    }
    let session: Core.Session;
    try {
      session = request.accept({
        statusCode: 200,
        body: { contentDisposition: 'session', contentType: 'application/sdp', content: negotiated.sdp },
      }).session;
    } catch (err) {
      rtp.close();
      this.logger.warn({ err, callId: info.callId }, 'INVITE could not be answered');
      return;
    }
    const call = this.connect(media, negotiated.codec, session, info, app, doc.elements);
    call.debugLog.add(
      'info',
      'sip_answered',
      `SIP call ${message.callId} from ${source ? `${source.transport}:${source.address}:${source.port}` : '?'}, ${negotiated.codec.name}, RTP ${rtp.port} ⇄ ${negotiated.media.remoteAddress}:${negotiated.media.remotePort}`,
    );
  }

  /**
   * Places an outbound call (`POST /Call/`): `to` is a SIP URI (`sip:alice@host:port`) or a number
   * dialled through `sip.trunk`. Resolves once the INVITE is sent; on answer the call runs `app`'s
   * XML (`CallStatus=in-progress`); a refusal, timeout or failure is logged and, when the call had
   * a hangup URL, reported there with the SIP status as `HangupCause`.
   * @throws CallstreamError `invalid_parameters` for an unusable target or no trunk for a number
   * @throws CapacityError when admission control refuses the call (config `calls`)
   * @throws Error when no RTP port pair is free, or the INVITE cannot be sent (its RTP session is
   *   closed at once)
   */
  async dial(options: {
    to: string;
    from: string;
    callId: string;
    app: XmlApplication;
    ringTimeoutMs?: number;
  }): Promise<void> {
    const sip = this.runtime.config.sip;
    let ruri: URI | undefined;
    let kind: 'udp' | 'tcp' = 'udp';
    if (/^sips?:/i.test(options.to)) {
      ruri = Grammar.URIParse(options.to);
      if (!ruri || !ruri.host)
        throw new CallstreamError('invalid_parameters', `to: "${options.to}" is not a SIP URI`);
      if (String(ruri.getParam('transport') ?? '').toLowerCase() === 'tcp') kind = 'tcp';
    } else if (/^\+?[0-9]{3,20}$/.test(options.to)) {
      if (!sip.trunk)
        throw new CallstreamError(
          'invalid_parameters',
          `to: dialling the number ${options.to} needs a SIP trunk (config sip.trunk)`,
        );
      ruri = new URI('sip', options.to, sip.trunk.host, sip.trunk.port);
      kind = sip.trunk.transport;
    } else {
      throw new CallstreamError(
        'invalid_parameters',
        `to: "${options.to}" is neither a SIP URI nor a phone number`,
      );
    }
    if (!this.cores.has(kind))
      throw new CallstreamError('invalid_parameters', `to: transport ${kind} is not enabled`);
    const core = this.core(kind);
    const media = await this.openMedia(null);
    try {
      this.invite(core, kind, ruri, options, media);
    } catch (err) {
      // (the RTP session — and its admission place — must not outlive a call that never started)
      media.rtp.close();
      throw err;
    }
  }

  /**
   * Sends the INVITE of {@link dial} and follows its outcome through sip.js's callbacks (answer,
   * refusal, ring timeout).
   * @throws Error (from sip.js) when the INVITE cannot be sent; nothing is armed then
   */
  private invite(
    core: Core.UserAgentCore,
    kind: 'udp' | 'tcp',
    ruri: URI,
    options: Parameters<SipServer['dial']>[0],
    media: OpenMedia,
  ): void {
    const { rtp, local } = media;
    const sip = this.runtime.config.sip;
    const fromUser = /^\+?\d+$/.test(options.from) ? options.from : 'callstream';
    const request = core.makeOutgoingRequestMessage(
      'INVITE',
      ruri,
      new URI('sip', fromUser, this.address, this.port),
      ruri,
      {},
      [`Contact: <sip:callstream@${this.address}:${this.port}${kind === 'tcp' ? ';transport=tcp' : ''}>`],
      { contentDisposition: 'session', contentType: 'application/sdp', content: makeOffer(local) },
    );
    const info: CallInfo = {
      callId: options.callId,
      from: options.from,
      to: options.to,
      direction: 'outbound',
    };
    let settled = false;
    const fail = (cause: string, detail: string) => {
      if (settled) return;
      settled = true;
      rtp.close();
      this.logger.info({ callId: info.callId, to: options.to, cause, detail }, 'outbound call failed');
      this.reportUnanswered(info, options.app, cause);
    };
    let timer: NodeJS.Timeout | undefined;
    const outgoing = core.invite(request, {
      onAccept: (response) => {
        clearTimeout(timer);
        response.ack();
        if (settled) {
          response.session.bye(); // answered after we gave up
          return;
        }
        settled = true;
        const answer = readAnswer(response.message.body);
        if (!answer.ok) {
          response.session.bye();
          rtp.close();
          this.logger.warn(
            { callId: info.callId, reason: answer.reason },
            'outbound call: unusable SDP answer; BYE sent',
          );
          this.reportUnanswered(info, options.app, 'INCOMPATIBLE_DESTINATION');
          return;
        }
        rtp.setMedia(answer.media);
        this.connect(media, answer.codec, response.session, info, options.app);
      },
      onReject: (response) => {
        clearTimeout(timer);
        const status = response.message.statusCode ?? 0;
        fail(hangupCauseOf(status), `SIP ${status} ${response.message.reasonPhrase}`);
      },
    });
    // (armed once the INVITE is out: a synchronous throw above leaves no timer behind)
    timer = setTimeout(() => {
      if (settled) return;
      try {
        outgoing.cancel();
      } catch {
        // already final
      }
      fail('NO_ANSWER', `no answer within ${options.ringTimeoutMs ?? sip.ringTimeoutMs} ms`);
    }, options.ringTimeoutMs ?? sip.ringTimeoutMs);
    timer.unref();
  }

  /**
   * Opens the RTP session of a call about to be set up. Its events reach the leg once
   * {@link connect} has made one; the first rejected packet of each kind is noted in the call's
   * debug log (all are counted in the session's stats).
   * @throws CapacityError when admission control refuses the call (config `calls`)
   * @throws Error when no RTP port pair is free
   */
  private async openMedia(sipCallId: string | null): Promise<OpenMedia> {
    const notes = new Set<string>();
    // Assigned right after the sockets open; packet events are macrotasks, so none arrives before.
    let media!: OpenMedia;
    // The call's place (admission control) is held as long as its RTP session: set-up, then the call.
    const admission = this.runtime.admission.admit();
    let rtp: RtpSession;
    try {
      rtp = await RtpSession.open(this.rtpOptions(), {
        onFrame: (f, at, hr) => media.leg?.frame(f, at, hr),
        onDtmf: (d, at) => media.leg?.dtmf(d, at),
        onTimeout: () => media.leg?.mediaTimeout(),
        onReject: (reason, from) => {
          if (notes.has(reason)) return;
          notes.add(reason);
          const text = `RTP packet from ${from} dropped: ${reason}`;
          if (media.call) media.call.debugLog.add('warning', `rtp_${reason}`, text);
          else this.logger.debug({ sipCallId }, text);
        },
        onClosed: () => admission.release(),
      });
    } catch (err) {
      admission.release();
      throw err;
    }
    const local = {
      address: this.address,
      port: rtp.port,
      sessionId: randomInt(1, 2 ** 31),
      sessionVersion: 1,
    };
    media = { rtp, local, leg: null, call: null };
    return media;
  }

  /** Makes the connected dialog a call: leg, `Call`, and its XML flow (prefetched for inbound). */
  private connect(
    media: OpenMedia,
    codec: CallCodec,
    session: Core.Session,
    info: CallInfo,
    app: XmlApplication,
    prefetched?: XmlElement[],
  ): Call {
    this.stats.answered++;
    const leg = new SipLeg(codec, session, media.rtp, media.local, {
      onClosed: (l) => this.legClosed(l),
      onNote: (level, code, text) => call.debugLog.add(level, code, text),
    });
    this.legs.set(leg.callId, leg);
    const call = this.runtime.newCall(leg, info);
    media.leg = leg;
    media.call = call;
    new XmlSession(this.runtime, call, app).start(prefetched);
    return call;
  }

  private legClosed(leg: SipLeg): void {
    this.legs.delete(leg.callId);
    this.transport.forget(leg.callId);
    const st = leg.rtp.stats;
    const e = this.rtpEnded;
    e.packetsIn += st.packetsIn;
    e.packetsOut += st.packetsOut;
    e.lost += st.lost;
    e.late += st.late;
    e.rejected += st.rejected;
  }

  /** RTP and SIP totals (ended + live legs) in Prometheus exposition format. */
  metricsText(): string {
    const t = { ...this.rtpEnded };
    for (const leg of this.legs.values()) {
      const st = leg.rtp.stats;
      t.packetsIn += st.packetsIn;
      t.packetsOut += st.packetsOut;
      t.lost += st.lost;
      t.late += st.late;
      t.rejected += st.rejected;
    }
    const counter = (name: string, help: string, v: number) =>
      `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${v}\n`;
    return (
      counter('callstream_rtp_packets_received_total', 'RTP packets received from callers', t.packetsIn) +
      counter('callstream_rtp_packets_sent_total', 'RTP packets sent to callers', t.packetsOut) +
      counter('callstream_rtp_packets_lost_total', 'RTP packets never received (sequence gaps)', t.lost) +
      counter('callstream_rtp_packets_late_total', 'RTP packets dropped as duplicate or too late', t.late) +
      counter(
        'callstream_rtp_packets_rejected_total',
        'RTP packets rejected (foreign source, bad header, payload type)',
        t.rejected,
      ) +
      counter('callstream_sip_invites_total', 'INVITEs received', this.stats.invites) +
      counter(
        'callstream_sip_calls_answered_total',
        'calls answered (inbound) or connected (outbound)',
        this.stats.answered,
      ) +
      `# HELP callstream_sip_live_legs SIP calls up\n# TYPE callstream_sip_live_legs gauge\ncallstream_sip_live_legs ${this.legs.size}\n`
    );
  }

  /** Hangup URL of a call that never connected. */
  private reportUnanswered(info: CallInfo, app: XmlApplication, cause: string): void {
    if (!app.hangup) return;
    this.runtime.callbacks.send({
      key: `call:${info.callId}`,
      url: app.hangup.url,
      method: app.hangup.method,
      params: {
        CallUUID: info.callId,
        From: info.from,
        To: info.to,
        Direction: info.direction,
        CallStatus: cause === 'USER_BUSY' ? 'busy' : cause === 'NO_ANSWER' ? 'no-answer' : 'failed',
        HangupCause: cause,
        Duration: '0',
        BillDuration: '0',
      },
    });
  }

  private rtpOptions() {
    const sip = this.runtime.config.sip;
    return {
      clock: this.runtime.clock,
      io: this.udpIo,
      preempt: () => this.runtime.mediaClock.runIfDue?.(),
      host: sip.host,
      portMin: sip.rtpPortMin,
      portMax: sip.rtpPortMax,
      reorderPackets: sip.reorderPackets,
      timeoutMs: sip.rtpTimeoutMs,
      rtcpIntervalMs: sip.rtcpIntervalMs,
      onSendInterval: (ms: number) => this.runtime.latency.rtpSendInterval.record(ms),
    };
  }

  /** Stops taking calls, hangs up live SIP legs (BYE), closes sockets. */
  async close(): Promise<void> {
    this.closing = true;
    for (const leg of [...this.legs.values()]) leg.hangup('SHUTDOWN');
    // Give the BYEs a moment to leave before the sockets close.
    await new Promise((r) => setTimeout(r, 50));
    for (const core of this.cores.values()) core.dispose();
    await this.transport.close();
    await this.udpIo.close();
  }
}

/** Plivo's From/To: the user part for numbers, else the SIP URI. */
function partyOf(uri: URI): string {
  const user = uri.user ?? '';
  return /^\+?\d+$/.test(user) ? user : uri.toString();
}

/** Plivo-style HangupCause of a final SIP failure (RFC 3398-like mapping; 408/503 also stand for transaction timeouts and transport errors, RFC 3261 §8.1.3.1). */
export function hangupCauseOf(status: number): string {
  if (status === 486 || status === 600) return 'USER_BUSY';
  if (status === 487) return 'ORIGINATOR_CANCEL';
  if (status === 480) return 'NO_ANSWER';
  if (status === 408) return 'RECOVERY_ON_TIMER_EXPIRE';
  if (status === 404 || status === 484) return 'UNALLOCATED_NUMBER';
  if (status === 503) return 'NETWORK_OUT_OF_ORDER';
  return 'CALL_REJECTED';
}
