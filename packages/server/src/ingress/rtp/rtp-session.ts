/**
 * One call's RTP/RTCP endpoint (RFC 3550): a UDP socket pair in the configured port range,
 * symmetric RTP (we send to where the caller's media really comes from, RFC 4961), a reorder
 * buffer driven by sequence numbers, re-framing to 20 ms, loss and silence-suppression gaps filled
 * with codec silence (so time advances evenly), RFC 4733 events in and out, RTCP sender/receiver
 * reports, and an inactivity timeout. Outgoing packets are sent only when the call's media-clock
 * tick calls {@link RtpSession.sendFrame} — this class never schedules media itself.
 */
import { randomInt } from 'node:crypto';
import {
  RtcpPacketConverter,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
} from 'werift-rtp';
import type { Clock } from '../../clock/clock.js';
import { ReorderBuffer } from './reorder.js';
import { DtmfReceiver, encodeDtmfEvent, type EventPacket } from './rfc4733.js';
import { inlineUdpIo, type UdpChannel, type UdpIo, type UdpPair, type UdpSource } from './udp-io.js';

/** The negotiated media of a session (from SDP offer/answer). */
export interface RtpMediaParams {
  /** Audio payload type (0 PCMU, 8 PCMA). */
  payloadType: number;
  /** Byte value of digital silence in the codec (0xFF μ-law, 0xD5 A-law). */
  silenceByte: number;
  /** Hz (8000 for G.711). */
  clockRate: number;
  /** telephone-event payload type, or null if the peer did not offer RFC 4733. */
  eventPayloadType: number | null;
  /** Where the SDP says to send (before latching). */
  remoteAddress: string;
  remotePort: number;
  /** Peer's RTCP port (a=rtcp or port+1). */
  remoteRtcpPort: number;
  /**
   * Our direction, as in our SDP answer: `sendrecv`; `recvonly` (the peer holds us with
   * `a=sendonly`: we send nothing); `sendonly` (the peer receives only: no inactivity timeout);
   * `inactive` (neither).
   */
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
}

/** What the session reports. */
export interface RtpSessionEvents {
  /** One 20 ms frame (`clockRate/50` bytes) of caller audio, on arrival (`arrivalHr`: performance.now()). */
  onFrame(frame: Uint8Array, captureMs: number, arrivalHr: number): void;
  onDtmf(digit: string, startMs: number): void;
  /** No RTP for `timeoutMs` while the peer should be sending. */
  onTimeout(): void;
  /** A rejected packet (counted; also reported for the call's debug log, rate-limited). */
  onReject?(reason: string, from: string): void;
  /** The session closed (its ports are free again). Once. */
  onClosed?(): void;
}

/** Options of an RTP session. */
export interface RtpSessionOptions {
  clock: Clock;
  /** Bind address. */
  host: string;
  portMin: number;
  portMax: number;
  reorderPackets: number;
  /** 0 = never. */
  timeoutMs: number;
  rtcpIntervalMs: number;
  /** Records the interval between consecutive outgoing RTP packets (ms) — server-side pacing metric. */
  onSendInterval?: (ms: number) => void;
  /** Called before each received RTP packet is handled: the media clock's preemption point. */
  preempt?: () => void;
  /** Where the sockets live (default: this thread, {@link inlineUdpIo}). */
  io?: UdpIo;
}

/** Counters of one session. */
export interface RtpStats {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  lost: number;
  late: number;
  rejected: number;
  foreign: number;
  rtcpIn: number;
  rtcpOut: number;
  dtmfIn: number;
  dtmfOut: number;
  /** Interarrival jitter estimate (RFC 3550 §6.4.1), timestamp units. */
  jitter: number;
}

const MAX_GAP_FILL_MS = 1000;
/** Ports in use by this process's sessions. */
const portsInUse = new Set<number>();

interface InPacket {
  pt: number;
  ts: number;
  payload: Uint8Array;
  at: number;
  hr: number;
}

/**
 * An RTP session. Create with {@link RtpSession.open}; `close()` releases the ports.
 */
export class RtpSession {
  readonly stats: RtpStats = {
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    lost: 0,
    late: 0,
    rejected: 0,
    foreign: 0,
    rtcpIn: 0,
    rtcpOut: 0,
    dtmfIn: 0,
    dtmfOut: 0,
    jitter: 0,
  };
  /** Our SSRC (random, RFC 3550 §8). */
  readonly ssrc = randomInt(1, 0xffffffff);
  private media: RtpMediaParams | null = null;
  private remote: { address: string; port: number } | null = null;
  private latched = false;
  private remoteSsrc = -1;
  private seq = randomInt(0, 0xffff);
  private ts = randomInt(0, 0x7fffffff);
  private marker = true;
  private readonly dtmfOut: EventPacket[] = [];
  private dtmfTs = 0;
  private expectTs = -1;
  private pending: Uint8Array | null = null;
  private pendingLen = 0;
  private readonly reorder: ReorderBuffer<InPacket>;
  private readonly dtmf: DtmfReceiver;
  private lastRxAt: number;
  private ticks = 0;
  private closed = false;
  private transitPrev = NaN;
  private highestSeq = -1;
  private seqCycles = 0;
  private firstSeq = -1;
  private lastSr = 0;
  private lastSrAt = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private lastOutTs = 0;
  private lastSendHr = 0;
  private timeoutMs: number;

  private constructor(
    private readonly sockets: UdpPair,
    /** Local RTP port (even); RTCP is `port + 1`. */
    readonly port: number,
    private readonly options: RtpSessionOptions,
    private readonly events: RtpSessionEvents,
  ) {
    this.lastRxAt = options.clock.now();
    this.timeoutMs = options.timeoutMs;
    this.reorder = new ReorderBuffer<InPacket>(options.reorderPackets, {
      onPacket: (p, lost) => this.onOrdered(p, lost),
      onReject: () => {
        this.stats.late++;
      },
    });
    this.dtmf = new DtmfReceiver((digit) => {
      this.stats.dtmfIn++;
      events.onDtmf(digit, options.clock.now());
    });
  }

  /** Packets from the socket pair: RTP through the media clock's preemption point, then parsed. */
  private onPacket(channel: UdpChannel, msg: Buffer, from: UdpSource, arrivalHr: number): void {
    if (channel === 1) return this.onRtcp(msg, from);
    this.options.preempt?.();
    this.onRtp(msg, from, arrivalHr);
  }

  /**
   * Binds an even RTP port and the next odd RTCP port in `[portMin, portMax]`.
   * @throws Error when no port pair is free
   */
  static async open(options: RtpSessionOptions, events: RtpSessionEvents): Promise<RtpSession> {
    const base = options.portMin + (options.portMin % 2); // RTP on even ports (RFC 3550 §11)
    const span = Math.floor((options.portMax - base) / 2);
    const start = randomInt(0, Math.max(1, span));
    const io = options.io ?? inlineUdpIo;
    for (let i = 0; i < span; i++) {
      const port = base + 2 * ((start + i) % span);
      if (portsInUse.has(port)) continue;
      portsInUse.add(port); // reserved while binding (another call may be opening concurrently)
      // Packets can only arrive in a later macrotask, after the session below exists.
      let session: RtpSession | null = null;
      let pair: UdpPair;
      try {
        pair = await io.bindPair(options.host, port, {
          onPacket: (channel, msg, from, arrivalHr) => session?.onPacket(channel, msg, from, arrivalHr),
          // A send to an unreachable peer surfaces as a socket error on some platforms: count, never crash.
          onError: () => {
            if (session) session.stats.rejected++;
          },
        });
      } catch {
        portsInUse.delete(port);
        continue;
      }
      session = new RtpSession(pair, port, options, events);
      return session;
    }
    throw new Error(`no free RTP port pair in ${options.portMin}-${options.portMax}`);
  }

  /** Sets or updates (re-INVITE) the negotiated media. A changed address ends the latch. */
  setMedia(media: RtpMediaParams): void {
    const moved =
      !this.media ||
      this.media.remoteAddress !== media.remoteAddress ||
      this.media.remotePort !== media.remotePort;
    const codecChanged = this.media !== null && this.media.payloadType !== media.payloadType;
    this.media = media;
    if (moved) {
      this.remote =
        media.remoteAddress === '0.0.0.0' ? null : { address: media.remoteAddress, port: media.remotePort };
      this.latched = false;
    }
    if (codecChanged) {
      this.pending = null;
      this.pendingLen = 0;
    }
    this.lastRxAt = this.options.clock.now(); // a renegotiation restarts the inactivity timer
  }

  /** The address we currently send to (after latching), `ip:port`, or null. */
  get remoteEndpoint(): string | null {
    return this.remote ? `${this.remote.address}:${this.remote.port}` : null;
  }

  private onRtp(msg: Buffer, rinfo: UdpSource, arrivalHr: number): void {
    if (this.closed || !this.media) return;
    const from = rinfo; // formatted only when a packet is rejected
    if (msg.length < 12 || msg[0]! >> 6 !== 2) return this.reject('not_rtp', from);
    // RFC 3550 §5.1 fixed header, parsed in place (no per-packet objects on the hot path).
    const b0 = msg[0]!;
    const csrcCount = b0 & 0x0f;
    let offset = 12 + 4 * csrcCount;
    if (b0 & 0x10) {
      if (msg.length < offset + 4) return this.reject('malformed_rtp', from);
      offset += 4 + 4 * msg.readUInt16BE(offset + 2); // header extension (§5.3.1)
    }
    let end = msg.length;
    if (b0 & 0x20) {
      const pad = msg[end - 1]!;
      if (pad === 0 || pad > end - offset) return this.reject('malformed_rtp', from);
      end -= pad;
    }
    if (offset > end) return this.reject('malformed_rtp', from);
    const pt = msg[1]! & 0x7f;
    const seq = msg.readUInt16BE(2);
    const timestamp = msg.readUInt32BE(4);
    const ssrc = msg.readUInt32BE(8);
    const isEvent = pt === this.media.eventPayloadType;
    if (pt !== this.media.payloadType && !isEvent) return this.reject('unexpected_payload_type', from);
    if (this.latched) {
      if (rinfo.address !== this.remote!.address || rinfo.port !== this.remote!.port) {
        this.stats.foreign++;
        return this.reject('foreign_source', from);
      }
    } else {
      // Symmetric RTP: the first valid packet decides where our media goes.
      this.remote = { address: rinfo.address, port: rinfo.port };
      this.latched = true;
    }
    if (this.remoteSsrc !== ssrc) {
      this.remoteSsrc = ssrc;
      this.firstSeq = seq;
      this.highestSeq = seq;
      this.seqCycles = 0;
      this.transitPrev = NaN;
      this.expectedPrior = 0;
      this.receivedPrior = 0;
    }
    const now = this.options.clock.now();
    this.lastRxAt = now;
    this.stats.packetsIn++;
    this.stats.bytesIn += msg.length;
    this.trackSequence(seq);
    if (!isEvent) this.trackJitter(timestamp, now);
    const payload = new Uint8Array(msg.buffer, msg.byteOffset + offset, end - offset);
    this.reorder.push(seq, {
      pt,
      ts: timestamp,
      payload,
      at: now,
      hr: arrivalHr,
    });
  }

  private trackSequence(seq: number): void {
    const d = (((seq - this.highestSeq) & 0xffff) << 16) >> 16;
    if (d > 0) {
      if (seq < this.highestSeq) this.seqCycles += 0x10000;
      this.highestSeq = seq;
    }
  }

  private trackJitter(ts: number, now: number): void {
    const rate = this.media!.clockRate;
    const transit = (now * rate) / 1000 - ts;
    if (!Number.isNaN(this.transitPrev)) {
      let d = Math.abs(transit - this.transitPrev);
      if (d > rate) d = 0; // a timestamp jump (new talkspurt after DTX) is not jitter
      this.stats.jitter += (d - this.stats.jitter) / 16;
    }
    this.transitPrev = transit;
  }

  private onOrdered(p: InPacket, lost: number): void {
    const media = this.media!;
    this.stats.lost += lost;
    if (p.pt === media.eventPayloadType) {
      this.dtmf.receive(p.ts, p.payload);
      return;
    }
    if (this.expectTs >= 0) {
      const gap = (p.ts - this.expectTs) | 0; // signed 32-bit distance
      if (gap > 0 && gap <= (MAX_GAP_FILL_MS * media.clockRate) / 1000)
        this.fill(gap, media.silenceByte, p.at, p.hr);
      // gap < 0: overlapping/older timestamps; larger gaps: discontinuity (new talkspurt after a
      // long silence or a sender restart) — neither is filled.
    }
    this.expectTs = (p.ts + p.payload.length) >>> 0;
    this.append(p.payload, p.at, p.hr);
  }

  /** Appends caller audio and emits every complete 20 ms frame (bit-exact; views when aligned). */
  private append(bytes: Uint8Array, at: number, hr: number): void {
    const frameBytes = this.media!.clockRate / 50;
    let off = 0;
    if (this.pendingLen > 0) {
      const take = Math.min(frameBytes - this.pendingLen, bytes.length);
      this.pending!.set(bytes.subarray(0, take), this.pendingLen);
      this.pendingLen += take;
      off = take;
      if (this.pendingLen < frameBytes) return;
      const frame = this.pending!;
      this.pending = null;
      this.pendingLen = 0;
      this.events.onFrame(frame, at, hr);
    }
    while (bytes.length - off >= frameBytes) {
      this.events.onFrame(bytes.subarray(off, off + frameBytes), at, hr);
      off += frameBytes;
    }
    if (off < bytes.length) {
      this.pending = new Uint8Array(frameBytes);
      this.pending.set(bytes.subarray(off));
      this.pendingLen = bytes.length - off;
    }
  }

  private fill(samples: number, silenceByte: number, at: number, hr: number): void {
    this.append(new Uint8Array(samples).fill(silenceByte), at, hr);
  }

  private reject(reason: string, from: { address: string; port: number }): void {
    this.stats.rejected++;
    this.events.onReject?.(reason, `${from.address}:${from.port}`);
  }

  private onRtcp(msg: Buffer, rinfo: UdpSource): void {
    if (this.closed) return;
    try {
      for (const p of RtcpPacketConverter.deSerialize(msg)) {
        if (p instanceof RtcpSrPacket) {
          // Middle 32 bits of the NTP timestamp, for LSR/DLSR in our reports (§6.4.1).
          this.lastSr = Number((p.senderInfo.ntpTimestamp >> 16n) & 0xffffffffn);
          this.lastSrAt = this.options.clock.now();
        }
      }
      this.stats.rtcpIn++;
    } catch {
      this.reject('malformed_rtcp', rinfo);
    }
  }

  /**
   * Sends one 20 ms frame (`clockRate/50` bytes, the call codec) — or, while a DTMF event is being
   * sent, the next RFC 4733 packet instead (§2.5.1.1: the audio timestamp keeps advancing). Also
   * drives RTCP and the inactivity check (every call is one media-clock tick).
   */
  sendFrame(frame: Uint8Array): void {
    if (this.closed || !this.media) return;
    this.ticks++;
    const media = this.media;
    const step = media.clockRate / 50;
    if (this.remote && (media.direction === 'sendrecv' || media.direction === 'sendonly')) {
      const ev = this.dtmfOut.shift();
      if (ev && media.eventPayloadType !== null) {
        if (ev.marker) this.dtmfTs = this.ts;
        this.send(media.eventPayloadType, ev.marker, this.dtmfTs, ev.payload);
        this.stats.dtmfOut += ev.marker ? 1 : 0;
        if (this.dtmfOut.length === 0) this.marker = true; // audio after an event starts a talkspurt
      } else {
        this.send(media.payloadType, this.marker, this.ts, frame);
        this.marker = false;
      }
    }
    this.ts = (this.ts + step) >>> 0;
    if (this.ticks % Math.max(1, Math.round(this.options.rtcpIntervalMs / 20)) === 0) this.sendRtcp();
    if (this.ticks % 25 === 0) this.checkTimeout();
  }

  private send(pt: number, marker: boolean, ts: number, payload: Uint8Array): void {
    // A fresh buffer per packet: dgram sends asynchronously, so a reused buffer could be
    // overwritten before it leaves. allocUnsafe takes it from Node's pool slab (no zero-fill).
    const buf = Buffer.allocUnsafe(12 + payload.length);
    buf[0] = 0x80;
    buf[1] = (marker ? 0x80 : 0) | pt;
    buf.writeUInt16BE(this.seq, 2);
    buf.writeUInt32BE(ts, 4);
    buf.writeUInt32BE(this.ssrc, 8);
    buf.set(payload, 12);
    this.seq = (this.seq + 1) & 0xffff;
    this.stats.packetsOut++;
    this.stats.bytesOut += buf.length;
    this.lastOutTs = ts;
    if (this.options.onSendInterval) {
      const t = performance.now();
      if (this.lastSendHr > 0) this.options.onSendInterval(t - this.lastSendHr);
      this.lastSendHr = t;
    }
    this.sockets.send(0, buf, this.remote!.port, this.remote!.address);
  }

  /** Queues a DTMF digit as RFC 4733 events; false if the peer did not negotiate telephone-event. */
  sendDtmf(digit: string, durationMs: number): boolean {
    if (!this.media || this.media.eventPayloadType === null) return false;
    this.dtmfOut.push(...encodeDtmfEvent(digit, durationMs, this.media.clockRate));
    return true;
  }

  private sendRtcp(): void {
    if (!this.remote || !this.media) return;
    const reports: RtcpReceiverInfo[] = [];
    if (this.remoteSsrc >= 0) {
      const extended = this.seqCycles + this.highestSeq;
      const expected = extended - this.firstSeq + 1;
      const received = this.stats.packetsIn;
      const expectedInterval = expected - this.expectedPrior;
      const receivedInterval = received - this.receivedPrior;
      this.expectedPrior = expected;
      this.receivedPrior = received;
      const lostInterval = expectedInterval - receivedInterval;
      reports.push(
        new RtcpReceiverInfo({
          ssrc: this.remoteSsrc,
          fractionLost:
            expectedInterval > 0 && lostInterval > 0 ? Math.floor((lostInterval << 8) / expectedInterval) : 0,
          packetsLost: Math.max(0, Math.min(0x7fffff, expected - received)),
          highestSequence: extended >>> 0,
          jitter: Math.floor(this.stats.jitter),
          lsr: this.lastSr,
          dlsr: this.lastSr ? Math.floor(((this.options.clock.now() - this.lastSrAt) / 1000) * 65536) : 0,
        }),
      );
    }
    const packet =
      this.stats.packetsOut > 0
        ? new RtcpSrPacket({
            ssrc: this.ssrc,
            senderInfo: new RtcpSenderInfo({
              ntpTimestamp: ntpTime(this.options.clock.now()),
              rtpTimestamp: this.lastOutTs,
              packetCount: this.stats.packetsOut,
              octetCount: this.stats.bytesOut - 12 * this.stats.packetsOut,
            }),
            reports,
          })
        : new RtcpRrPacket({ ssrc: this.ssrc, reports });
    const port = this.latched ? this.remote.port + 1 : this.media.remoteRtcpPort;
    this.sockets.send(1, packet.serialize(), port, this.remote.address);
    this.stats.rtcpOut++;
  }

  private checkTimeout(): void {
    const m = this.media!;
    if (this.timeoutMs <= 0) return;
    if (m.direction === 'sendonly' || m.direction === 'inactive') {
      this.lastRxAt = this.options.clock.now(); // on hold the peer legitimately sends nothing
      return;
    }
    if (this.options.clock.now() - this.lastRxAt >= this.timeoutMs) {
      this.timeoutMs = 0; // fire once
      this.events.onTimeout();
    }
  }

  /** Releases the sockets and the port pair. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reorder.flush();
    portsInUse.delete(this.port);
    this.sockets.close();
    this.events.onClosed?.();
  }
}

/** NTP timestamp (RFC 3550 §4: seconds since 1900 in the high 32 bits) of epoch ms. */
export function ntpTime(epochMs: number): bigint {
  const seconds = BigInt(Math.floor(epochMs / 1000) + 2208988800);
  const fraction = BigInt(Math.floor(((epochMs % 1000) / 1000) * 2 ** 32));
  return (seconds << 32n) | fraction;
}
