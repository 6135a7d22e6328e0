// RTP/RTCP socket thread (see udp-io.ts, WorkerUdpIo). Owns every call's UDP port pair so the main
// thread spends no time in per-datagram syscalls and callbacks. Messages from main:
//   { t: 'bind', id, host, port } → { t: 'bound', id } | { t: 'bindFailed', id, error }
//   { t: 'close', id }            (sockets of pair `id` closed)
//   { t: 'addr', aid, address }   (destination address id, used by the send records that follow)
//   ArrayBuffer                   send records: u32 id, u8 channel, u16 port, u16 aid, u16 len, bytes
// To main: the replies above, { t: 'error', id } per socket error, and ArrayBuffers of received
// records: u32 id, u8 channel, u32 IPv4, u16 port, f64 arrivalHr (main's timeline), u16 len, bytes —
// one buffer per I/O batch (posted from setImmediate, after the poll phase read every ready socket).
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

const RECV_HEADER = 21;
const RECV_FLUSH = 60_000;
/** Add to this thread's performance.now() to get the main thread's. */
const toMainHr = performance.timeOrigin - workerData.timeOrigin;

/** @type {Map<number, [dgram.Socket, dgram.Socket]>} */
const pairs = new Map();
/** @type {string[]} */
const addresses = [];
/** @type {Map<string, number>} */
const ipNumbers = new Map();

let rx = new DataView(new ArrayBuffer(64 * 1024));
let rxLen = 0;
let rxQueued = false;

function lookup(address, family, callback) {
  if (isIPv4(address)) callback(null, address, 4);
  else dns.lookup(address, 4, callback);
}

function ipNumber(address) {
  let n = ipNumbers.get(address);
  if (n === undefined) {
    const p = address.split('.');
    n = p.length === 4 ? ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0 : 0;
    if (ipNumbers.size >= 4096) ipNumbers.clear();
    ipNumbers.set(address, n);
  }
  return n;
}

function flushRx() {
  rxQueued = false;
  if (rxLen === 0) return;
  const out = rx.buffer.slice(0, rxLen);
  rxLen = 0;
  parentPort.postMessage(out, [out]);
}

function onMessage(id, channel, msg, rinfo) {
  const hr = performance.now() + toMainHr;
  const need = RECV_HEADER + msg.length;
  if (msg.length > 0xffff) return;
  if (rxLen + need > rx.byteLength) {
    flushRx();
    if (need > rx.byteLength) rx = new DataView(new ArrayBuffer(need));
  }
  let o = rxLen;
  rx.setUint32(o, id);
  rx.setUint8(o + 4, channel);
  rx.setUint32(o + 5, ipNumber(rinfo.address));
  rx.setUint16(o + 9, rinfo.port);
  rx.setFloat64(o + 11, hr);
  rx.setUint16(o + 19, msg.length);
  o += RECV_HEADER;
  new Uint8Array(rx.buffer, o, msg.length).set(msg);
  rxLen = o + msg.length;
  if (rxLen >= RECV_FLUSH) flushRx();
  else if (!rxQueued) {
    rxQueued = true;
    setImmediate(flushRx);
  }
}

function bind(socket, host, port) {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

async function bindPair({ id, host, port }) {
  const rtp = dgram.createSocket({ type: 'udp4', lookup });
  const rtcp = dgram.createSocket({ type: 'udp4', lookup });
  try {
    await bind(rtp, host, port);
    await bind(rtcp, host, port + 1);
  } catch (e) {
    rtp.close();
    rtcp.close();
    parentPort.postMessage({ t: 'bindFailed', id, error: e instanceof Error ? e.message : String(e) });
    return;
  }
  rtp.on('message', (msg, rinfo) => onMessage(id, 0, msg, rinfo));
  rtcp.on('message', (msg, rinfo) => onMessage(id, 1, msg, rinfo));
  const onError = () => parentPort.postMessage({ t: 'error', id });
  rtp.on('error', onError);
  rtcp.on('error', onError);
  pairs.set(id, [rtp, rtcp]);
  parentPort.postMessage({ t: 'bound', id });
}

function sendBatch(buf) {
  const v = new DataView(buf);
  const bytes = new Uint8Array(buf);
  let o = 0;
  while (o + 11 <= buf.byteLength) {
    const id = v.getUint32(o);
    const channel = v.getUint8(o + 4);
    const port = v.getUint16(o + 5);
    const aid = v.getUint16(o + 7);
    const len = v.getUint16(o + 9);
    o += 11;
    const pair = pairs.get(id);
    const address = addresses[aid];
    // The transferred buffer is this thread's now and never reused: a view is safe to send.
    if (pair && address !== undefined) pair[channel].send(bytes.subarray(o, o + len), port, address);
    o += len;
  }
}

parentPort.on('message', (m) => {
  if (m instanceof ArrayBuffer) return sendBatch(m);
  switch (m.t) {
    case 'bind':
      void bindPair(m);
      break;
    case 'addr':
      addresses[m.aid] = m.address;
      break;
    case 'close': {
      const pair = pairs.get(m.id);
      if (!pair) break;
      pairs.delete(m.id);
      pair[0].close();
      pair[1].close();
      break;
    }
  }
});
