/**
 * Writes RTP streams as pcap files (libpcap format, Ethernet/IPv4/UDP) for sipp's
 * `play_pcap_audio`: real speech from our fixtures, sent by a real SIP peer.
 */
import { writeFileSync } from 'node:fs';

/** One RTP packet to put in a capture. */
export interface PcapRtpPacket {
  /** Seconds from the start of the capture. */
  at: number;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker?: boolean;
  payload: Uint8Array;
}

/**
 * μ-law audio as 20 ms RTP packets (PT 0, 160 bytes each, 20 ms apart), starting at `seq`/`ts`.
 */
export function mulawToRtpPackets(
  mulaw: Uint8Array,
  options: { seq?: number; ts?: number; ssrc?: number } = {},
): PcapRtpPacket[] {
  const out: PcapRtpPacket[] = [];
  const seq0 = options.seq ?? 1000;
  const ts0 = options.ts ?? 160000;
  for (let i = 0, n = 0; i + 160 <= mulaw.length; i += 160, n++) {
    out.push({
      at: n * 0.02,
      payloadType: 0,
      sequenceNumber: (seq0 + n) & 0xffff,
      timestamp: (ts0 + n * 160) >>> 0,
      ssrc: options.ssrc ?? 0x12345678,
      marker: n === 0,
      payload: mulaw.subarray(i, i + 160),
    });
  }
  return out;
}

/** Writes `packets` to `path` as UDP 127.0.0.1:6000 → 127.0.0.1:6002 (sipp rewrites addresses). */
export function writeRtpPcap(path: string, packets: PcapRtpPacket[]): void {
  const chunks: Buffer[] = [];
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(65535, 16);
  global.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  chunks.push(global);
  const base = 1_700_000_000;
  for (const p of packets) {
    const rtpLen = 12 + p.payload.length;
    const udpLen = 8 + rtpLen;
    const ipLen = 20 + udpLen;
    const frame = Buffer.alloc(14 + ipLen);
    frame.writeUInt16BE(0x0800, 12);
    const ip = 14;
    frame[ip] = 0x45;
    frame.writeUInt16BE(ipLen, ip + 2);
    frame[ip + 8] = 64;
    frame[ip + 9] = 17;
    frame.set([127, 0, 0, 1], ip + 12);
    frame.set([127, 0, 0, 1], ip + 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += frame.readUInt16BE(ip + i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    frame.writeUInt16BE(~sum & 0xffff, ip + 10);
    const udp = ip + 20;
    frame.writeUInt16BE(6000, udp);
    frame.writeUInt16BE(6002, udp + 2);
    frame.writeUInt16BE(udpLen, udp + 4);
    const rtp = udp + 8;
    frame[rtp] = 0x80;
    frame[rtp + 1] = (p.marker ? 0x80 : 0) | p.payloadType;
    frame.writeUInt16BE(p.sequenceNumber, rtp + 2);
    frame.writeUInt32BE(p.timestamp, rtp + 4);
    frame.writeUInt32BE(p.ssrc, rtp + 8);
    frame.set(p.payload, rtp + 12);
    const rec = Buffer.alloc(16);
    const t = base + p.at;
    rec.writeUInt32LE(Math.floor(t), 0);
    rec.writeUInt32LE(Math.round((t % 1) * 1e6), 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    chunks.push(rec, frame);
  }
  writeFileSync(path, Buffer.concat(chunks));
}
