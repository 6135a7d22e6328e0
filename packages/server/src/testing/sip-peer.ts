/**
 * A test SIP caller over UDP on loopback (shipped fake, design.md): places calls with an SDP offer
 * (PCMU/PCMA + telephone-event), ACKs, sends μ-law RTP paced at 20 ms, records every RTP packet
 * the server sends (arrival time, header, payload), answers the server's BYE, and can CANCEL or
 * BYE itself. Used by the SIP tests and the load benchmark, where sipp cannot capture RTP.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { Core } from 'sip.js';

/** One RTP packet received from the server. */
export interface ReceivedRtp {
  /** performance.now() at arrival, ms. */
  at: number;
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  payload: Buffer;
}

/** Options of {@link TestSipPeer.call}. */
export interface PeerCallOptions {
  /** Request-URI user (the called number). */
  user: string;
  /** Our number (From user). */
  from?: string;
  codecs?: Array<'PCMU' | 'PCMA'>;
  /** Offer telephone-event (PT 101). */
  telephoneEvent?: boolean;
  /** Override the SDP body entirely. */
  sdp?: string;
  extraHeaders?: string[];
  /** Receives each RTP packet instead of it being stored in `received` (load tests). */
  onRtp?: (packet: Buffer, at: number) => void;
}

const silent = new Core.LoggerFactory();
silent.builtinEnabled = false;
const log = silent.getLogger('test-peer');

/** One call placed by the peer. */
export class PeerCall {
  readonly received: ReceivedRtp[] = [];
  readonly responses: number[] = [];
  /** Final status of the INVITE (200, 486, …). */
  readonly final: Promise<number>;
  /** The INVITE's final response, once `final` has resolved (its headers: `getHeader('retry-after')`). */
  finalResponse: Core.IncomingResponseMessage | null = null;
  /** Resolves when the server hangs up (BYE) or we did. */
  readonly ended: Promise<'bye-from-server' | 'bye-from-us' | 'rejected'>;
  remoteMedia: { address: string; port: number } | null = null;
  remoteSdp = '';
  /** When the server's BYE arrived (performance.now()). */
  byeAt: number | null = null;
  private resolveFinal!: (s: number) => void;
  private resolveEnded!: (how: 'bye-from-server' | 'bye-from-us' | 'rejected') => void;
  private toTag = '';
  private remoteTarget = '';
  private cseq = 1;
  private seq = 100;
  private ts = 8000;
  private pacer: NodeJS.Timeout | null = null;
  private readonly pendingRequests = new Map<string, (status: number) => void>();

  constructor(
    private readonly peer: TestSipPeer,
    readonly callId: string,
    private readonly fromTag: string,
    private readonly target: { host: string; port: number },
    readonly rtp: dgram.Socket,
    private readonly options: PeerCallOptions,
    private readonly inviteBranch: string,
  ) {
    this.final = new Promise((r) => (this.resolveFinal = r));
    this.ended = new Promise((r) => (this.resolveEnded = r));
    rtp.on('message', (msg) => {
      if (msg.length < 12) return;
      if (options.onRtp) return options.onRtp(msg, performance.now());
      this.received.push({
        at: performance.now(),
        payloadType: msg[1]! & 0x7f,
        marker: (msg[1]! & 0x80) !== 0,
        sequenceNumber: msg.readUInt16BE(2),
        timestamp: msg.readUInt32BE(4),
        ssrc: msg.readUInt32BE(8),
        payload: msg.subarray(12),
      });
    });
  }

  /** Local RTP port. */
  get rtpPort(): number {
    return this.rtp.address().port;
  }

  private headers(method: string, cseq: number, branch: string, withToTag = true): string[] {
    const p = this.peer;
    return [
      `Via: SIP/2.0/UDP 127.0.0.1:${p.port};branch=${branch};rport`,
      `From: "Test Peer" <sip:${this.options.from ?? '15550009999'}@127.0.0.1:${p.port}>;tag=${this.fromTag}`,
      `To: <sip:${this.options.user}@${this.target.host}:${this.target.port}>${withToTag && this.toTag ? `;tag=${this.toTag}` : ''}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`,
      'Max-Forwards: 70',
    ];
  }

  /** Handles a response or request for this call (called by the peer). */
  onMessage(m: Core.IncomingRequestMessage | Core.IncomingResponseMessage): void {
    if (m instanceof Core.IncomingResponseMessage) {
      const method = m.cseq ? m.method : '';
      const status = m.statusCode ?? 0;
      this.responses.push(status);
      const waiter = this.pendingRequests.get(`${m.cseq} ${method}`);
      if (waiter) {
        if (status < 200) return;
        this.pendingRequests.delete(`${m.cseq} ${method}`);
        if (method === 'INVITE') this.sendAck(m, m.cseq); // re-INVITE
        waiter(status);
        return;
      }
      if (method === 'INVITE') {
        if (status >= 200) {
          if (m.toTag) this.toTag = m.toTag;
          this.sendAck(m);
          if (status < 300) {
            this.remoteSdp = m.body;
            const c = /c=IN IP4 (\S+)/.exec(m.body)?.[1];
            const port = /m=audio (\d+)/.exec(m.body)?.[1];
            if (c && port) this.remoteMedia = { address: c, port: Number(port) };
            const contact = m.getHeader('contact');
            this.remoteTarget = /<([^>]+)>/.exec(contact ?? '')?.[1] ?? '';
          } else this.resolveEnded('rejected');
          this.finalResponse = m;
          this.resolveFinal(status);
        }
        return;
      }
      return;
    }
    if (m.method === 'BYE') {
      this.byeAt = performance.now();
      this.reply(m, 200, 'OK');
      this.stopAudio();
      this.resolveEnded('bye-from-server');
    } else if (m.method === 'INVITE' || m.method === 'OPTIONS' || m.method === 'INFO') {
      this.reply(m, 200, 'OK');
    }
  }

  private reply(m: Core.IncomingRequestMessage, status: number, reason: string): void {
    const lines = [
      `SIP/2.0 ${status} ${reason}`,
      ...m.getHeaders('via').map((v) => `Via: ${v}`),
      `From: ${m.getHeader('from')}`,
      `To: ${m.getHeader('to')}`,
      `Call-ID: ${m.callId}`,
      `CSeq: ${m.getHeader('cseq')}`,
      'Content-Length: 0',
      '',
      '',
    ];
    this.peer.sendRaw(lines.join('\r\n'), this.target);
  }

  private sendAck(response: Core.IncomingResponseMessage, cseq = 1): void {
    // 2xx: a new transaction to the remote target; non-2xx: same branch (RFC 3261 §17.1.1.3).
    const ok = (response.statusCode ?? 0) < 300;
    const branch = ok ? newBranch() : this.inviteBranch;
    const contact = /<([^>]+)>/.exec(response.getHeader('contact') ?? '')?.[1];
    const ruri = ok && contact ? contact : `sip:${this.options.user}@${this.target.host}:${this.target.port}`;
    const lines = [`ACK ${ruri} SIP/2.0`, ...this.headers('ACK', cseq, branch), 'Content-Length: 0', '', ''];
    this.peer.sendRaw(lines.join('\r\n'), this.target);
  }

  /** Sends an in-dialog request (BYE, re-INVITE); resolves with the final status. */
  request(method: string, body = '', contentType = 'application/sdp'): Promise<number> {
    const cseq = ++this.cseq;
    const lines = [
      `${method} ${this.remoteTarget || `sip:${this.options.user}@${this.target.host}:${this.target.port}`} SIP/2.0`,
      ...this.headers(method, cseq, newBranch()),
      `Contact: <sip:test@127.0.0.1:${this.peer.port}>`,
      ...(body ? [`Content-Type: ${contentType}`] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    const done = new Promise<number>((r) => this.pendingRequests.set(`${cseq} ${method}`, r));
    this.peer.sendRaw(lines.join('\r\n'), this.target);
    return done;
  }

  /** Hangs up with BYE; resolves with its final status. */
  async bye(): Promise<number> {
    this.stopAudio();
    const status = await this.request('BYE');
    this.resolveEnded('bye-from-us');
    return status;
  }

  /** Cancels the INVITE (before the final response). */
  cancel(): void {
    const lines = [
      `CANCEL sip:${this.options.user}@${this.target.host}:${this.target.port} SIP/2.0`,
      ...this.headers('CANCEL', 1, this.inviteBranch, false),
      'Content-Length: 0',
      '',
      '',
    ];
    this.peer.sendRaw(lines.join('\r\n'), this.target);
  }

  /** Sends one RTP packet to the server's media address. */
  sendRtp(
    payloadType: number,
    payload: Uint8Array,
    options: { marker?: boolean; timestamp?: number } = {},
  ): void {
    if (!this.remoteMedia) return;
    const buf = Buffer.alloc(12 + payload.length);
    buf[0] = 0x80;
    buf[1] = (options.marker ? 0x80 : 0) | payloadType;
    buf.writeUInt16BE(this.seq, 2);
    buf.writeUInt32BE(options.timestamp ?? this.ts, 4);
    buf.writeUInt32BE(0x0badcafe, 8);
    buf.set(payload, 12);
    this.seq = (this.seq + 1) & 0xffff;
    this.rtp.send(buf, this.remoteMedia.port, this.remoteMedia.address);
  }

  /**
   * Sends μ-law audio as 20 ms packets paced in real time; then silence until {@link stopAudio}
   * (keeps the server's inactivity timer quiet). Resolves when the audio (not the silence) is sent.
   */
  sendAudio(mulaw: Uint8Array): Promise<void> {
    this.stopAudio();
    let off = 0;
    const silence = new Uint8Array(160).fill(0xff);
    const start = performance.now();
    let sent = 0;
    return new Promise((resolve) => {
      const tick = () => {
        const due = Math.floor((performance.now() - start) / 20) + 1;
        while (sent < due) {
          const frame = off < mulaw.length ? mulaw.subarray(off, off + 160) : silence;
          this.sendRtp(0, frame, { marker: sent === 0 });
          this.ts = (this.ts + 160) >>> 0;
          off += 160;
          sent++;
        }
        if (off >= mulaw.length) resolve(); // later calls are no-ops; silence keeps flowing
      };
      tick();
      this.pacer = setInterval(tick, 10);
    });
  }

  /** Stops sending RTP. */
  stopAudio(): void {
    if (this.pacer) clearInterval(this.pacer);
    this.pacer = null;
  }

  /** Payloads of received audio packets (PT `pt`) in arrival order, concatenated. */
  receivedAudio(pt = 0): Buffer {
    return Buffer.concat(this.received.filter((p) => p.payloadType === pt).map((p) => p.payload));
  }

  /** Releases the RTP socket. */
  close(): void {
    this.stopAudio();
    this.rtp.close();
  }
}

function newBranch(): string {
  return `z9hG4bK${randomBytes(8).toString('hex')}`;
}

/** The peer: one SIP UDP socket, any number of calls. */
export class TestSipPeer {
  private readonly calls = new Map<string, PeerCall>();
  /** Raw messages received that matched no call (e.g. OPTIONS replies), as text. */
  readonly stray: string[] = [];

  private constructor(private readonly socket: dgram.Socket) {
    socket.on('message', (msg) => {
      const text = msg.toString('utf8');
      const m = Core.Parser.parseMessage(text, log);
      const call = m ? this.calls.get(m.callId) : undefined;
      if (m && call) call.onMessage(m);
      else this.stray.push(text);
    });
  }

  /** Binds a SIP socket on 127.0.0.1. */
  static async start(): Promise<TestSipPeer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    return new TestSipPeer(s);
  }

  /** Our SIP port. */
  get port(): number {
    return this.socket.address().port;
  }

  /** Sends a raw datagram (malformed-input tests use this too). */
  sendRaw(text: string | Buffer, target: { host: string; port: number }): void {
    this.socket.send(text, target.port, target.host);
  }

  /** Places a call: INVITE with an SDP offer for a fresh RTP socket. Await `call.final`. */
  async call(target: { host: string; port: number }, options: PeerCallOptions): Promise<PeerCall> {
    const rtp = dgram.createSocket('udp4');
    await new Promise<void>((r) => rtp.bind(0, '127.0.0.1', r));
    const callId = `${randomBytes(8).toString('hex')}@127.0.0.1`;
    const branch = newBranch();
    const call = new PeerCall(this, callId, randomBytes(4).toString('hex'), target, rtp, options, branch);
    this.calls.set(callId, call);
    const codecs = options.codecs ?? ['PCMU'];
    const pts = codecs.map((c) => (c === 'PCMU' ? 0 : 8));
    const te = options.telephoneEvent ?? true;
    const sdp =
      options.sdp ??
      [
        'v=0',
        'o=peer 1 1 IN IP4 127.0.0.1',
        's=-',
        'c=IN IP4 127.0.0.1',
        't=0 0',
        `m=audio ${call.rtpPort} RTP/AVP ${[...pts, ...(te ? [101] : [])].join(' ')}`,
        ...codecs.map((c, i) => `a=rtpmap:${pts[i]} ${c}/8000`),
        ...(te ? ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-15'] : []),
        'a=ptime:20',
        'a=sendrecv',
        '',
      ].join('\r\n');
    const lines = [
      `INVITE sip:${options.user}@${target.host}:${target.port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`,
      `From: "Test Peer" <sip:${options.from ?? '15550009999'}@127.0.0.1:${this.port}>;tag=${(call as unknown as { fromTag: string }).fromTag}`,
      `To: <sip:${options.user}@${target.host}:${target.port}>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:test@127.0.0.1:${this.port}>`,
      'Max-Forwards: 70',
      ...(options.extraHeaders ?? []),
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(sdp)}`,
      '',
      sdp,
    ];
    this.sendRaw(lines.join('\r\n'), target);
    return call;
  }

  /** Closes the SIP socket and every call's RTP socket. */
  close(): void {
    for (const c of this.calls.values()) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.socket.close();
  }
}
