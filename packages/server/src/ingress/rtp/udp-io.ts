/**
 * Where the RTP/RTCP sockets live. {@link RtpSession} only sees a {@link UdpPair}: a bound
 * even/odd port pair (RFC 3550 §11) it can send from and hears packets on.
 *
 * - {@link InlineUdpIo}: `node:dgram` sockets on the calling (main) thread.
 * - {@link WorkerUdpIo}: every pair's sockets on one I/O worker thread (`udp-io-worker.mjs`). The
 *   main thread — which runs the media clock, the playout and the WebSocket streams — then spends no
 *   time in `sendmsg`/`recvmsg` or per-datagram callbacks: packets sent during a media-clock tick go
 *   to the worker as one transferred buffer, and packets received go the other way in one buffer per
 *   worker I/O batch. Measured at 200 echo calls (issue 6): the two RTP syscalls alone were ~116 ms
 *   per second of the main loop's ~630–910 ms busy time.
 *
 * Wire format between the threads (all big-endian, one `ArrayBuffer` of records):
 * - to the worker, per datagram: `u32 pairId, u8 channel, u16 port, u16 addressId, u16 length,
 *   bytes` — addresses are interned (`{t:'addr'}` is posted before the first batch that uses one);
 * - from the worker, per datagram: `u32 pairId, u8 channel, u32 IPv4, u16 port, f64 arrivalHr,
 *   u16 length, bytes` — `arrivalHr` already on the main thread's `performance.now()` timeline.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import { Worker } from 'node:worker_threads';

/** 0: RTP (the even port), 1: RTCP (port + 1). */
export type UdpChannel = 0 | 1;

/** A datagram's source. Valid only during the {@link UdpPairHandlers.onPacket} call. */
export interface UdpSource {
  address: string;
  port: number;
}

/** What a bound pair reports. */
export interface UdpPairHandlers {
  /**
   * One datagram. `data` is a view valid for the call (copy what you keep beyond it);
   * `arrivalHr` is when the socket read it, on this thread's `performance.now()` timeline (ms).
   */
  onPacket(channel: UdpChannel, data: Buffer, from: UdpSource, arrivalHr: number): void;
  /** A socket error (e.g. ICMP port unreachable surfacing on a send). Counted by the caller. */
  onError(): void;
}

/** A bound RTP/RTCP port pair. */
export interface UdpPair {
  /** The RTP port (even); RTCP is `port + 1`. */
  readonly port: number;
  /**
   * Sends one datagram from the pair's RTP or RTCP socket. `data` must not be modified afterwards
   * (it may be sent asynchronously). Never throws; after `close()` it is a no-op.
   */
  send(channel: UdpChannel, data: Uint8Array, port: number, address: string): void;
  /** Releases both sockets (after sending what was queued). Idempotent. */
  close(): void;
}

/** A place to bind RTP/RTCP port pairs. */
export interface UdpIo {
  /**
   * Binds `port` (RTP) and `port + 1` (RTCP) on `host`.
   * @throws Error (rejects) when either port cannot be bound (in use, not permitted)
   */
  bindPair(host: string, port: number, handlers: UdpPairHandlers): Promise<UdpPair>;
  /** Closes every pair (and the worker thread, if any). */
  close(): Promise<void>;
}

/**
 * `lookup` for the sockets: peers are IPv4 literals (from SDP or the latched source), so they are
 * passed through at once instead of through `dns.lookup` and a `nextTick` for each of the 50
 * packets per second per call; anything else (an SDP `c=` host name) still resolves through DNS.
 */
export function literalLookup(
  address: string,
  family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (isIPv4(address)) callback(null, address, 4);
  else dns.lookup(address, 4, callback);
}

function bindSocket(socket: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    socket.once('error', onError);
    socket.bind(port, host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

/** Sockets on the calling thread (`node:dgram`). */
export class InlineUdpIo implements UdpIo {
  private readonly pairs = new Set<UdpPair>();

  async bindPair(host: string, port: number, handlers: UdpPairHandlers): Promise<UdpPair> {
    const sockets = [0, 1].map(() => dgram.createSocket({ type: 'udp4', lookup: literalLookup }));
    const [rtp, rtcp] = sockets as [dgram.Socket, dgram.Socket];
    try {
      await bindSocket(rtp, host, port);
      await bindSocket(rtcp, host, port + 1);
    } catch (e) {
      rtp.close();
      rtcp.close();
      throw e;
    }
    let closed = false;
    rtp.on('message', (msg, rinfo) => handlers.onPacket(0, msg, rinfo, performance.now()));
    rtcp.on('message', (msg, rinfo) => handlers.onPacket(1, msg, rinfo, performance.now()));
    rtp.on('error', () => handlers.onError());
    rtcp.on('error', () => handlers.onError());
    const pairs = this.pairs;
    const pair: UdpPair = {
      port,
      send(channel, data, toPort, address) {
        if (closed) return;
        (channel === 0 ? rtp : rtcp).send(data, toPort, address);
      },
      close() {
        if (closed) return;
        closed = true;
        pairs.delete(pair);
        rtp.close();
        rtcp.close();
      },
    };
    pairs.add(pair);
    return pair;
  }

  async close(): Promise<void> {
    for (const p of [...this.pairs]) p.close();
  }
}

/** Process-wide default for sessions opened without an explicit {@link UdpIo}. */
export const inlineUdpIo: UdpIo = new InlineUdpIo();

const SEND_HEADER = 11;
const RECV_HEADER = 21;
/** A send batch is posted at once when it reaches this size (bytes). */
const SEND_BATCH_FLUSH = 60_000;
/** Interned destination addresses before the table is reset (u16 ids). */
const MAX_ADDRESSES = 4096;

type WorkerReply =
  { t: 'bound'; id: number } | { t: 'bindFailed'; id: number; error: string } | { t: 'error'; id: number };

interface WorkerPair {
  handlers: UdpPairHandlers;
  closed: boolean;
}

/**
 * Every pair's sockets on one I/O worker thread. Sends are batched per turn of the main thread's
 * event loop (one `postMessage` per media-clock tick, flushed in a microtask, or at once when a
 * received batch is dispatched, so a tick preempted inside a batch does not wait for its end);
 * received datagrams arrive in one buffer per worker I/O batch.
 *
 * If the worker dies, its pairs are dead (their calls end by RTP inactivity), `onFailure` is told,
 * and the next {@link bindPair} starts a new worker.
 */
export class WorkerUdpIo implements UdpIo {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pairs = new Map<number, WorkerPair>();
  private readonly binds = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly addressIds = new Map<string, number>();
  private readonly ipStrings = new Map<number, string>();
  private batch = new DataView(new ArrayBuffer(64 * 1024));
  private batchLen = 0;
  private flushQueued = false;
  private readonly source: UdpSource = { address: '', port: 0 };
  private readonly flushNow = () => this.flush();

  constructor(private readonly onFailure: (err: Error) => void = () => {}) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./udp-io-worker.mjs', import.meta.url), {
      workerData: { timeOrigin: performance.timeOrigin },
    });
    w.unref();
    w.on('message', (m: ArrayBuffer | WorkerReply) => {
      if (m instanceof ArrayBuffer) this.dispatch(m);
      else this.onReply(m);
    });
    const fail = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.addressIds.clear();
      this.batchLen = 0;
      for (const b of this.binds.values()) b.reject(new Error(`RTP I/O thread failed: ${err.message}`));
      this.binds.clear();
      for (const p of this.pairs.values()) p.closed = true;
      this.pairs.clear();
      this.onFailure(err);
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  private onReply(m: WorkerReply): void {
    if (m.t === 'error') {
      this.pairs.get(m.id)?.handlers.onError();
      return;
    }
    const b = this.binds.get(m.id);
    if (!b) return;
    this.binds.delete(m.id);
    if (m.t === 'bound') b.resolve();
    else b.reject(new Error(m.error));
  }

  async bindPair(host: string, port: number, handlers: UdpPairHandlers): Promise<UdpPair> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    await new Promise<void>((resolve, reject) => {
      this.binds.set(id, { resolve, reject });
      worker.postMessage({ t: 'bind', id, host, port });
    });
    const state: WorkerPair = { handlers, closed: false };
    this.pairs.set(id, state);
    return {
      port,
      send: (channel, data, toPort, address) => {
        if (!state.closed) this.enqueue(id, channel, data, toPort, address);
      },
      close: () => {
        if (state.closed) return;
        state.closed = true;
        this.flush(); // what the call queued last still goes out
        this.pairs.delete(id);
        this.worker?.postMessage({ t: 'close', id });
      },
    };
  }

  private enqueue(id: number, channel: UdpChannel, data: Uint8Array, port: number, address: string): void {
    const worker = this.worker;
    if (!worker) return;
    let aid = this.addressIds.get(address);
    if (aid === undefined) {
      if (this.addressIds.size >= MAX_ADDRESSES) {
        this.flush(); // records already queued use the old ids
        this.addressIds.clear();
      }
      aid = this.addressIds.size;
      this.addressIds.set(address, aid);
      worker.postMessage({ t: 'addr', aid, address });
    }
    const need = SEND_HEADER + data.length;
    if (this.batchLen + need > this.batch.byteLength) {
      const bigger = new DataView(new ArrayBuffer(Math.max(this.batch.byteLength * 2, this.batchLen + need)));
      new Uint8Array(bigger.buffer).set(new Uint8Array(this.batch.buffer, 0, this.batchLen));
      this.batch = bigger;
    }
    const v = this.batch;
    let o = this.batchLen;
    v.setUint32(o, id);
    v.setUint8(o + 4, channel);
    v.setUint16(o + 5, port);
    v.setUint16(o + 7, aid);
    v.setUint16(o + 9, data.length);
    o += SEND_HEADER;
    new Uint8Array(v.buffer, o, data.length).set(data);
    this.batchLen = o + data.length;
    if (this.batchLen >= SEND_BATCH_FLUSH) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushNow);
    }
  }

  /** Posts the queued datagrams to the worker now. */
  flush(): void {
    this.flushQueued = false;
    if (this.batchLen === 0 || !this.worker) return;
    const out = this.batch.buffer.slice(0, this.batchLen);
    this.batchLen = 0;
    this.worker.postMessage(out, [out]);
  }

  private dispatch(buf: ArrayBuffer): void {
    const v = new DataView(buf);
    const source = this.source;
    let o = 0;
    while (o + RECV_HEADER <= buf.byteLength) {
      const id = v.getUint32(o);
      const channel = v.getUint8(o + 4) as UdpChannel;
      const ip = v.getUint32(o + 5);
      const port = v.getUint16(o + 9);
      const arrivalHr = v.getFloat64(o + 11);
      const len = v.getUint16(o + 19);
      o += RECV_HEADER;
      const pair = this.pairs.get(id);
      if (pair && !pair.closed) {
        source.address = this.ipString(ip);
        source.port = port;
        pair.handlers.onPacket(channel, Buffer.from(buf, o, len), source, arrivalHr);
        // A media-clock tick preempted from inside this batch sent its packets: let them go now.
        if (this.batchLen > 0) this.flush();
      }
      o += len;
    }
  }

  private ipString(ip: number): string {
    let s = this.ipStrings.get(ip);
    if (s === undefined) {
      s = `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
      if (this.ipStrings.size >= MAX_ADDRESSES) this.ipStrings.clear();
      this.ipStrings.set(ip, s);
    }
    return s;
  }

  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.flush();
    this.worker = null;
    for (const p of this.pairs.values()) p.closed = true;
    this.pairs.clear();
    for (const b of this.binds.values()) b.reject(new Error('RTP I/O closed'));
    this.binds.clear();
    await w.terminate();
  }
}
