/**
 * SIP transport layer (RFC 3261 §18) for UDP and TCP on one port, under the sip.js core:
 * - framing: one datagram = one message; on TCP, headers then exactly Content-Length bytes (§18.3);
 * - sanity checks before the core sees a message (§8.1.1 mandatory headers, Content-Length, size);
 * - `received` and `rport` added to the top Via of every request (§18.2.1, RFC 3581), so responses
 *   go back to where the request really came from (and over the TCP connection it came on);
 * - in-dialog requests we originate go to the flow the dialog's requests arrive on (symmetric
 *   signalling through NAT), otherwise to the Request-URI;
 * - retransmission of our own requests over UDP (Timer A/E with T1 = 500 ms doubling to T2 = 4 s,
 *   §17.1.1.2/§17.1.2.2), which the sip.js core leaves to the transport.
 * Bad input never throws out of this module: it is answered (400/513) when it can be, otherwise
 * dropped, and always counted in {@link SipTransportStats}.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { Core } from 'sip.js';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../clock/clock.js';

type IncomingRequestMessage = Core.IncomingRequestMessage;
type IncomingResponseMessage = Core.IncomingResponseMessage;

/** A message's source: transport and address. */
export interface SipSource {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
}

/** Counters of rejected input. */
export interface SipTransportStats {
  received: number;
  sent: number;
  unparseable: number;
  missingHeaders: number;
  badContentLength: number;
  tooLarge: number;
  retransmissions: number;
}

/** What the transport delivers upwards. */
export interface SipTransportHandler {
  onRequest(message: IncomingRequestMessage, source: SipSource): void;
  onResponse(message: IncomingResponseMessage, source: SipSource): void;
}

/** Options of {@link SipTransport}. */
export interface SipTransportOptions {
  host: string;
  port: number;
  transports: ReadonlyArray<'udp' | 'tcp'>;
  clock: Clock;
  logger: Logger;
  /** Largest message accepted, bytes (headers + body). */
  maxMessageBytes?: number;
}

const T1 = 500;
const T2 = 4000;
const MANDATORY = ['via', 'from', 'to', 'call-id', 'cseq'] as const;
const silentLogger: Core.LoggerFactory = new Core.LoggerFactory();
silentLogger.builtinEnabled = false;
const parserLogger = silentLogger.getLogger('sip.parser');

/** The UDP and TCP listeners of the SIP server. */
export class SipTransport {
  readonly stats: SipTransportStats = {
    received: 0,
    sent: 0,
    unparseable: 0,
    missingHeaders: 0,
    badContentLength: 0,
    tooLarge: 0,
    retransmissions: 0,
  };
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly connections = new Map<string, net.Socket>();
  /** Call-ID → where that dialog's requests come from. */
  private readonly flows = new Map<string, SipSource>();
  /** Branch → pending UDP retransmission. */
  private readonly retransmits = new Map<string, { timer: TimerHandle; started: number }>();
  private handler: SipTransportHandler | null = null;
  private readonly maxBytes: number;
  /** The bound port (useful with port 0). */
  port = 0;

  constructor(private readonly options: SipTransportOptions) {
    this.maxBytes = options.maxMessageBytes ?? 32 * 1024;
  }

  /**
   * Binds the configured transports.
   * @throws Error if a port cannot be bound
   */
  async listen(handler: SipTransportHandler): Promise<void> {
    this.handler = handler;
    // Port 0: UDP picks a free port and TCP must then take the same one, which a TCP socket may
    // already hold (an outgoing connection's local port) — pick again rather than fail start-up.
    this.port = await bindSamePort(this.options.port, (port) => this.bind(port));
  }

  /**
   * Binds the configured transports on `port` (0: any free one, the same for UDP and TCP).
   * @returns the port bound
   * @throws Error if a transport cannot be bound; what was bound is closed again
   */
  private async bind(port: number): Promise<number> {
    try {
      return await this.bindAll(port);
    } catch (e) {
      this.udp?.close();
      this.tcp?.close();
      this.udp = null;
      this.tcp = null;
      throw e;
    }
  }

  private async bindAll(port: number): Promise<number> {
    if (this.options.transports.includes('udp')) {
      const udp = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => {
          udp.close();
          reject(e);
        };
        udp.once('error', onError);
        udp.bind(port, this.options.host, () => {
          udp.off('error', onError);
          resolve();
        });
      });
      udp.on('error', (err) => this.options.logger.warn({ err }, 'SIP UDP socket error'));
      udp.on('message', (msg, rinfo) =>
        this.receive(msg, { transport: 'udp', address: rinfo.address, port: rinfo.port }),
      );
      port = udp.address().port;
      this.udp = udp;
    }
    if (this.options.transports.includes('tcp')) {
      const tcp = net.createServer((socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => {
          tcp.close();
          reject(e);
        };
        tcp.once('error', onError);
        tcp.listen(port, this.options.host, () => {
          tcp.off('error', onError);
          resolve();
        });
      });
      port = (tcp.address() as net.AddressInfo).port;
      this.tcp = tcp;
    }
    return port;
  }

  private accept(socket: net.Socket): void {
    const source: SipSource = {
      transport: 'tcp',
      address: socket.remoteAddress?.replace(/^::ffff:/, '') ?? '',
      port: socket.remotePort ?? 0,
    };
    const key = `${source.address}:${source.port}`;
    this.connections.set(key, socket);
    let buffer = Buffer.alloc(0);
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
      for (;;) {
        while (buffer.length >= 2 && buffer[0] === 0x0d && buffer[1] === 0x0a) buffer = buffer.subarray(2); // keep-alive CRLFs
        const headerEnd = buffer.indexOf('\r\n\r\n');
        if (headerEnd < 0) {
          if (buffer.length > this.maxBytes)
            return this.dropConnection(socket, 'headers exceed the size limit');
          return;
        }
        const head = buffer.subarray(0, headerEnd).toString('utf8');
        const m = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$/im.exec(head);
        if (!m) return this.dropConnection(socket, 'message without Content-Length on a stream transport');
        const length = Number(m[1]);
        const total = headerEnd + 4 + length;
        if (total > this.maxBytes) return this.dropConnection(socket, 'message exceeds the size limit');
        if (buffer.length < total) return;
        const message = buffer.subarray(0, total);
        buffer = buffer.subarray(total);
        this.receive(message, source);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(key));
  }

  private dropConnection(socket: net.Socket, why: string): void {
    this.stats.tooLarge++;
    this.options.logger.warn(
      { peer: `${socket.remoteAddress}:${socket.remotePort}` },
      `SIP/TCP: ${why}; closing`,
    );
    socket.destroy();
  }

  /** One framed message from the network. Never throws. */
  private receive(raw: Buffer, source: SipSource): void {
    this.stats.received++;
    if (raw.length <= 4 && raw.toString('latin1').trim() === '') return; // keep-alive
    if (raw.length > this.maxBytes) {
      this.stats.tooLarge++;
      return this.replyRaw(raw.toString('latin1', 0, 8192), source, 513, 'Message Too Large');
    }
    const text = raw.toString('utf8');
    let message: IncomingRequestMessage | IncomingResponseMessage | undefined;
    try {
      message = Core.Parser.parseMessage(text, parserLogger);
    } catch {
      message = undefined;
    }
    if (!message) {
      this.stats.unparseable++;
      this.options.logger.debug(
        { from: `${source.address}:${source.port}`, head: text.slice(0, 200) },
        'unparseable SIP message dropped',
      );
      return this.replyRaw(text, source, 400, 'Bad Request');
    }
    const missing = MANDATORY.filter((h) => !message.hasHeader(h));
    const isRequest = message instanceof Core.IncomingRequestMessage;
    if (missing.length || (isRequest && (!message.cseq || !message.method))) {
      this.stats.missingHeaders++;
      if (isRequest) this.replyRaw(text, source, 400, `Missing ${missing.join(', ') || 'CSeq'}`);
      return;
    }
    const declared = message.getHeader('content-length');
    const bodyBytes = Buffer.byteLength(message.body ?? '', 'utf8');
    if (declared !== undefined && (!/^\s*\d+\s*$/.test(declared) || Number(declared) > bodyBytes)) {
      this.stats.badContentLength++;
      if (isRequest) this.replyRaw(text, source, 400, 'Bad Content-Length');
      return;
    }
    if (message instanceof Core.IncomingRequestMessage) {
      this.markVia(message, source);
      if (message.method !== 'ACK' && message.method !== 'CANCEL') this.flows.set(message.callId, source);
      this.handler?.onRequest(message, source);
    } else {
      const r = message as IncomingResponseMessage;
      const branch = r.viaBranch;
      const pending = branch ? this.retransmits.get(branch) : undefined;
      if (pending) {
        this.options.clock.clearTimeout(pending.timer);
        this.retransmits.delete(branch);
      }
      this.handler?.onResponse(r, source);
    }
  }

  /** Adds `received` and fills `rport` on the top Via (§18.2.1, RFC 3581 §4). */
  private markVia(message: IncomingRequestMessage, source: SipSource): void {
    const vias = (message.headers as Record<string, Array<{ raw: string }>>)['Via'];
    const top = vias?.[0];
    if (!top) return;
    const comma = top.raw.indexOf(',');
    const first = comma < 0 ? top.raw : top.raw.slice(0, comma);
    const rest = comma < 0 ? '' : top.raw.slice(comma);
    let v = first.replace(/;\s*received=[^;,\s]*/i, '');
    if (/;\s*rport(=[^;,\s]*)?/i.test(v)) v = v.replace(/;\s*rport(=[^;,\s]*)?/i, `;rport=${source.port}`);
    else v += `;rport=${source.port}`;
    v += `;received=${source.address}`;
    top.raw = v + rest;
  }

  /** Sends a message produced by the sip.js core; routes it as described in the module doc. */
  send(protocol: 'udp' | 'tcp', message: string): Promise<void> {
    try {
      const isResponse = message.startsWith('SIP/2.0 ');
      const dest = isResponse
        ? this.responseDestination(message, protocol)
        : this.requestDestination(message, protocol);
      if (!dest) {
        this.options.logger.warn(
          { firstLine: message.slice(0, message.indexOf('\r\n')) },
          'SIP message without route dropped',
        );
        return Promise.resolve();
      }
      this.write(dest, message);
      if (!isResponse && dest.transport === 'udp' && !message.startsWith('ACK '))
        this.retransmit(dest, message);
    } catch (err) {
      this.options.logger.warn({ err }, 'SIP send failed');
    }
    return Promise.resolve();
  }

  private write(dest: SipSource, message: string): void {
    this.stats.sent++;
    if (dest.transport === 'udp') {
      this.udp?.send(message, dest.port, dest.address);
      return;
    }
    const conn = this.connections.get(`${dest.address}:${dest.port}`);
    if (conn && !conn.destroyed) {
      conn.write(message);
      return;
    }
    // No connection (closed by the peer): open one (§18.2.2).
    const socket = net.connect(dest.port, dest.address, () => socket.write(message));
    socket.on('error', () => socket.destroy());
    this.accept(socket);
  }

  private retransmit(dest: SipSource, message: string): void {
    const branch = /^Via:[^\r\n]*;branch=([^;\s,\r\n]+)/im.exec(message)?.[1];
    if (!branch) return;
    const isInvite = message.startsWith('INVITE ');
    const started = this.options.clock.now();
    let interval = T1;
    const fire = () => {
      if (!this.retransmits.has(branch)) return;
      if (this.options.clock.now() - started >= 64 * T1) {
        this.retransmits.delete(branch); // Timer B/F: the transaction layer reports the timeout
        return;
      }
      this.stats.retransmissions++;
      this.write(dest, message);
      interval = isInvite ? interval * 2 : Math.min(interval * 2, T2);
      this.retransmits.set(branch, { timer: this.options.clock.setTimeout(fire, interval), started });
    };
    this.retransmits.set(branch, { timer: this.options.clock.setTimeout(fire, interval), started });
  }

  private responseDestination(message: string, protocol: 'udp' | 'tcp'): SipSource | null {
    const via = /^(?:Via|v):\s*SIP\/2\.0\/(\w+)\s+([^;\s,]+)([^\r\n,]*)/im.exec(message);
    if (!via) return null;
    const params = via[3] ?? '';
    const received = /;\s*received=([^;\s,]+)/i.exec(params)?.[1];
    const rport = /;\s*rport=(\d+)/i.exec(params)?.[1];
    const [host, port] = splitHostPort(via[2]!);
    return {
      transport: protocol,
      address: received ?? host,
      port: rport ? Number(rport) : (port ?? 5060),
    };
  }

  private requestDestination(message: string, protocol: 'udp' | 'tcp'): SipSource | null {
    const callId = /^(?:Call-ID|i):\s*([^\r\n]+)/im.exec(message)?.[1]?.trim();
    const flow = callId ? this.flows.get(callId) : undefined;
    if (flow) return flow;
    const uri = /^\w+\s+sips?:(?:[^@\s]*@)?([^;\s>?]+)/.exec(message)?.[1];
    if (!uri) return null;
    const [host, port] = splitHostPort(uri);
    return { transport: protocol, address: host, port: port ?? 5060 };
  }

  /**
   * Answers a message the core will never see with a minimal stateless response built from the
   * headers that are present (§8.2.6). Nothing is sent without a parseable Via (nowhere to send).
   */
  private replyRaw(text: string, source: SipSource, status: number, reason: string): void {
    if (/^SIP\/2\.0 /.test(text)) return; // never answer a response
    const firstLine = text.slice(0, Math.max(0, text.indexOf('\r\n')));
    if (!/^[A-Z]+ \S+ SIP\/2\.0$/.test(firstLine) || firstLine.startsWith('ACK ')) return;
    const header = (re: RegExp) => text.match(re)?.map((h) => h.replace(/\r$/, '')) ?? [];
    const vias = header(/^(?:Via|v):[^\r\n]*$/gim);
    if (vias.length === 0) return;
    const lines = [
      `SIP/2.0 ${status} ${reason.replace(/[\r\n]/g, ' ')}`,
      ...vias.map((v, i) => (i === 0 ? `${v};received=${source.address};rport=${source.port}` : v)),
      ...header(/^(?:From|f|To|t|Call-ID|i|CSeq):[^\r\n]*$/gim),
      'Content-Length: 0',
      '',
      '',
    ];
    const reply = lines.join('\r\n');
    const dest = this.responseDestination(reply, source.transport);
    if (dest) this.write(source.transport === 'tcp' ? source : dest, reply);
  }

  /** Forgets a dialog's flow (call ended). */
  forget(callId: string): void {
    this.flows.delete(callId);
  }

  /** Closes listeners and connections; cancels retransmissions. */
  async close(): Promise<void> {
    for (const r of this.retransmits.values()) this.options.clock.clearTimeout(r.timer);
    this.retransmits.clear();
    for (const c of this.connections.values()) c.destroy();
    this.connections.clear();
    await Promise.all([
      this.udp ? new Promise<void>((r) => this.udp!.close(() => r())) : null,
      this.tcp ? new Promise<void>((r) => this.tcp!.close(() => r())) : null,
    ]);
  }
}

function splitHostPort(s: string): [string, number | undefined] {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    const port = s.slice(end + 2);
    return [s.slice(1, end), port ? Number(port) : undefined];
  }
  const i = s.lastIndexOf(':');
  if (i < 0) return [s, undefined];
  const port = Number(s.slice(i + 1));
  return [s.slice(0, i), Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined];
}

/** Attempts {@link bindSamePort} makes on port 0 before giving up. */
export const SAME_PORT_ATTEMPTS = 10;

/**
 * Runs `bind(port)`; when `port` is 0 (any free port, the same for every transport) and a later
 * transport finds the port the first one picked already taken (`EADDRINUSE`), `bind` is run again
 * — up to {@link SAME_PORT_ATTEMPTS} times. `bind` must have released what it bound when it throws.
 * @returns what `bind` returned (the port bound)
 * @throws the error of `bind` for a fixed port, any other error, or the last `EADDRINUSE`
 */
export async function bindSamePort(port: number, bind: (port: number) => Promise<number>): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bind(port);
    } catch (e) {
      const clash = (e as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (port !== 0 || !clash || attempt >= SAME_PORT_ATTEMPTS) throw e;
    }
  }
}
