/**
 * Pure cores of SIP ingress: RTP reorder buffer, RFC 4733 events, SDP offer/answer, digest auth.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ReorderBuffer, seqDelta } from '../src/ingress/rtp/reorder.js';
import { DtmfReceiver, encodeDtmfEvent, parseTelephoneEvent } from '../src/ingress/rtp/rfc4733.js';
import { answerOffer } from '../src/ingress/sip/sdp.js';
import { DigestAuthenticator, parseDigestHeader } from '../src/ingress/sip/digest.js';

function collect(window: number) {
  const out: Array<[number, number]> = [];
  const rejects: string[] = [];
  const buf = new ReorderBuffer<number>(window, {
    onPacket: (p, lost) => out.push([p, lost]),
    onReject: (r) => rejects.push(r),
  });
  return { buf, out, rejects };
}

test('reorder: swaps within the window are put back in order; duplicates and late packets are rejected', () => {
  const { buf, out, rejects } = collect(3);
  for (const s of [10, 12, 11, 13, 13, 9, 14]) buf.push(s, s);
  assert.deepEqual(
    out.map(([p]) => p),
    [10, 11, 12, 13, 14],
  );
  assert.deepEqual(rejects, ['duplicate_or_late', 'duplicate_or_late']);
  assert.equal(buf.stats.lost, 0);
});

test('reorder: a missing packet is given up once the window is full, and counted lost', () => {
  const { buf, out } = collect(2);
  for (const s of [1, 3, 4, 5]) buf.push(s, s);
  assert.deepEqual(out, [
    [1, 0],
    [3, 1],
    [4, 0],
    [5, 0],
  ]);
  assert.equal(buf.stats.lost, 1);
  buf.push(2, 2); // arrives too late
  assert.equal(out.length, 4);
});

test('reorder: sequence numbers wrap at 65536; a huge jump restarts the series', () => {
  const { buf, out } = collect(3);
  for (const s of [65534, 0, 65535, 1]) buf.push(s, s);
  assert.deepEqual(
    out.map(([p]) => p),
    [65534, 65535, 0, 1],
  );
  assert.equal(seqDelta(65535, 0), 1);
  assert.equal(seqDelta(0, 65535), -1);
  buf.push(30000, 30000);
  assert.equal(out.at(-1)![0], 30000);
  assert.equal(buf.stats.restarts, 1);
});

test('RFC 4733: one digit per event timestamp whatever the retransmissions; encoder round-trips', () => {
  const digits: string[] = [];
  const rx = new DtmfReceiver((d) => digits.push(d));
  const packets = encodeDtmfEvent('#', 100, 8000);
  assert.equal(packets.length, 4 + 3); // 5 frames: 4 updates, the end packet 3 times
  assert.equal(packets[0]!.marker, true);
  const parsed = packets.map((p) => parseTelephoneEvent(p.payload)!);
  assert.deepEqual(
    parsed.map((p) => p.duration),
    [160, 320, 480, 640, 800, 800, 800],
  );
  assert.deepEqual(
    parsed.map((p) => p.end),
    [false, false, false, false, true, true, true],
  );
  for (const p of packets) rx.receive(1000, p.payload);
  for (const p of encodeDtmfEvent('5', 60, 8000)) rx.receive(2000, p.payload);
  rx.receive(2000, encodeDtmfEvent('5', 60, 8000).at(-1)!.payload); // late retransmission
  assert.deepEqual(digits, ['#', '5']);
  assert.throws(() => encodeDtmfEvent('x', 100, 8000), RangeError);
});

const offer = (m: string, extra: string[] = []) =>
  ['v=0', 'o=- 1 1 IN IP4 192.0.2.1', 's=-', 'c=IN IP4 192.0.2.1', 't=0 0', m, ...extra, ''].join('\r\n');
const local = { address: '198.51.100.7', port: 20000, sessionId: 42, sessionVersion: 1 };

test('SDP: the caller’s preferred G.711 is chosen, telephone-event kept, ptime 20, direction mirrored', () => {
  const r = answerOffer(
    offer('m=audio 4000 RTP/AVP 18 8 0 96', [
      'a=rtpmap:18 G729/8000',
      'a=rtpmap:96 telephone-event/8000',
      'a=sendonly',
    ]),
    local,
  );
  assert.ok(r.ok);
  assert.equal(r.codec.name, 'PCMA');
  assert.equal(r.media.payloadType, 8);
  assert.equal(r.media.eventPayloadType, 96);
  assert.equal(r.media.direction, 'recvonly');
  assert.equal(r.media.remoteAddress, '192.0.2.1');
  assert.equal(r.media.remotePort, 4000);
  assert.equal(r.media.remoteRtcpPort, 4001);
  assert.match(r.sdp, /^m=audio 20000 RTP\/AVP 8 96\r$/m);
  assert.match(r.sdp, /^a=rtpmap:96 telephone-event\/8000\r$/m);
  assert.match(r.sdp, /^a=ptime:20\r$/m);
  assert.match(r.sdp, /^a=recvonly\r$/m);
  assert.match(r.sdp, /^c=IN IP4 198\.51\.100\.7\r$/m);
});

test('SDP: refusals — no G.711 (488), SRTP only (488), keepCodec on re-INVITE (488), no c= (400); video refused with port 0', () => {
  const g729 = answerOffer(offer('m=audio 4000 RTP/AVP 18', ['a=rtpmap:18 G729/8000']), local);
  assert.ok(!g729.ok && g729.status === 488 && /G729/.test(g729.reason));
  const srtp = answerOffer(offer('m=audio 4000 RTP/SAVP 0'), local);
  assert.ok(!srtp.ok && srtp.status === 488);
  const keep = answerOffer(offer('m=audio 4000 RTP/AVP 8'), local, 'PCMU');
  assert.ok(!keep.ok && keep.status === 488);
  const noC = answerOffer(
    'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n',
    local,
  );
  assert.ok(!noC.ok && noC.status === 400);
  const video = answerOffer(offer('m=video 5000 RTP/AVP 96', ['m=audio 4000 RTP/AVP 0']), local);
  assert.ok(video.ok);
  assert.match(video.sdp, /^m=video 0 /m);
  assert.match(video.sdp, /^m=audio 20000 RTP\/AVP 0\r$/m);
});

test('digest: a correct RFC 2617 response (qop=auth) passes; wrong password, foreign nonce and stale nonce fail', () => {
  let now = 1_000_000;
  const auth = new DigestAuthenticator({ realm: 'r', username: 'alice', password: 'pw' }, () => now);
  const challenge = parseDigestHeader(auth.challenge())!;
  assert.equal(challenge.realm, 'r');
  assert.equal(challenge.qop, 'auth');
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');
  const answer = (password: string, nonce = challenge.nonce!) => {
    const ha1 = md5(`alice:r:${password}`);
    const ha2 = md5('INVITE:sip:100@example.com');
    const response = md5(`${ha1}:${nonce}:00000001:abc:auth:${ha2}`);
    return `Digest username="alice", realm="r", nonce="${nonce}", uri="sip:100@example.com", response="${response}", qop=auth, nc=00000001, cnonce="abc", algorithm=MD5`;
  };
  assert.deepEqual(auth.verify('INVITE', answer('pw')), { ok: true });
  assert.equal(auth.verify('INVITE', answer('nope')).ok, false);
  assert.deepEqual(auth.verify('INVITE', answer('pw', '1000000.forged')), {
    ok: false,
    stale: false,
    reason: 'bad_nonce',
  });
  assert.deepEqual(auth.verify('INVITE', undefined), { ok: false, stale: false, reason: 'missing' });
  now += 301_000;
  assert.deepEqual(auth.verify('INVITE', answer('pw')), { ok: false, stale: true, reason: 'bad_nonce' });
});

for (const thread of ['main thread', 'I/O thread'] as const)
  test(`RTP session (sockets on the ${thread}): ptime 30 is re-framed to 20 ms bit-exact (also past CSRC, extension, padding); a lost packet becomes exactly its silence; output seq/ts/marker`, async () => {
    const { RtpSession } = await import('../src/ingress/rtp/rtp-session.js');
    const { InlineUdpIo, WorkerUdpIo } = await import('../src/ingress/rtp/udp-io.js');
    const dgram = await import('node:dgram');
    const { systemClock } = await import('../src/clock/clock.js');
    const io = thread === 'main thread' ? new InlineUdpIo() : new WorkerUdpIo();
    const frames: Uint8Array[] = [];
    const session = await RtpSession.open(
      {
        clock: systemClock,
        io,
        host: '127.0.0.1',
        portMin: 33000,
        portMax: 33100,
        reorderPackets: 2,
        timeoutMs: 0,
        rtcpIntervalMs: 5000,
      },
      { onFrame: (f) => frames.push(f.slice()), onDtmf: () => {}, onTimeout: () => {} },
    );
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
    const received: Buffer[] = [];
    peer.on('message', (m) => received.push(m));
    session.setMedia({
      payloadType: 8,
      silenceByte: 0xd5,
      clockRate: 8000,
      eventPayloadType: null,
      remoteAddress: '127.0.0.1',
      remotePort: peer.address().port,
      remoteRtcpPort: peer.address().port + 1,
      direction: 'sendrecv',
    });
    try {
      const payload = (n: number) => Buffer.alloc(240, n);
      const send = (seq: number, ts: number, body: Buffer) => {
        const h = Buffer.alloc(12);
        h[0] = 0x80;
        h[1] = 8;
        h.writeUInt16BE(seq, 2);
        h.writeUInt32BE(ts, 4);
        h.writeUInt32BE(7, 8);
        if (seq === 105) {
          // one CSRC, a 1-word header extension and 3 bytes of padding (RFC 3550 §5.1, §5.3.1)
          h[0] = 0x80 | 0x20 | 0x10 | 1;
          const csrc = Buffer.alloc(4, 9);
          const ext = Buffer.from([0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
          peer.send(Buffer.concat([h, csrc, ext, body, Buffer.from([0, 0, 3])]), session.port, '127.0.0.1');
          return;
        }
        peer.send(Buffer.concat([h, body]), session.port, '127.0.0.1');
      };
      // packets 0..5 of 30 ms; packet 2 is lost; 3 more arrive so the window gives up on it
      for (const i of [0, 1, 3, 4, 5]) send(100 + i, 1000 + 240 * i, payload(i + 1));
      const { until } = await import('./helpers.js');
      await until(() => frames.length >= 9, '9 frames');
      const all = Buffer.concat(frames);
      const expected = Buffer.concat([
        payload(1),
        payload(2),
        Buffer.alloc(240, 0xd5),
        payload(4),
        payload(5),
        payload(6),
      ]);
      assert.equal(all.length, expected.length);
      assert.ok(all.equals(expected), 'audio and silence in the right places');
      assert.ok(frames.every((f) => f.length === 160));
      assert.equal(session.stats.lost, 1);
      // Outgoing: consecutive seq, ts +160, marker on the first packet only, our SSRC.
      for (let i = 0; i < 3; i++) session.sendFrame(new Uint8Array(160).fill(i));
      await until(() => received.length >= 3, 'our RTP');
      const seq = received.map((m) => m.readUInt16BE(2));
      const ts = received.map((m) => m.readUInt32BE(4));
      assert.deepEqual([(seq[1]! - seq[0]!) & 0xffff, (seq[2]! - seq[1]!) & 0xffff], [1, 1]);
      assert.deepEqual([(ts[1]! - ts[0]!) >>> 0, (ts[2]! - ts[1]!) >>> 0], [160, 160]);
      assert.deepEqual(
        received.map((m) => m[1]! >> 7),
        [1, 0, 0],
      );
      assert.ok(received.every((m) => m.readUInt32BE(8) === session.ssrc && (m[1]! & 0x7f) === 8));
      assert.ok(received[2]!.subarray(12).equals(Buffer.alloc(160, 2)));
    } finally {
      session.close();
      peer.close();
      await io.close();
    }
  });

test('latency histogram: quantiles within one bucket, max exact, Prometheus summary in seconds', async () => {
  const { LatencyHistogram } = await import('../src/metrics/latency.js');
  const h = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) h.record(i / 100); // 0.01 … 10 ms
  assert.equal(h.count, 1000);
  assert.ok(Math.abs(h.quantile(0.5) - 5) <= 0.051, `p50 ${h.quantile(0.5)}`);
  assert.ok(Math.abs(h.quantile(0.99) - 9.9) <= 0.051, `p99 ${h.quantile(0.99)}`);
  assert.equal(h.quantile(1), 10);
  h.record(250.4);
  h.record(5000);
  assert.equal(h.max, 5000);
  assert.equal(h.quantile(1), 5000);
  // countOutside: 0.01…10 ms are all below 15, 250.4 and 5000 are above 25
  assert.equal(h.countOutside(15, 25), 1002);
  const g = new LatencyHistogram();
  for (const v of [14.9, 15, 20, 24.99, 25, 30]) g.record(v);
  assert.equal(g.countOutside(15, 25), 3);
  const text = h.exposition('x_seconds', 'help');
  assert.match(text, /^x_seconds\{quantile="0.5"\} 0\.005/m);
  assert.match(text, /^x_seconds_count 1002$/m);
  // As a histogram: cumulative counts below each bound (0.01…10 ms: 1000 samples, 1 per 0.01 ms).
  assert.equal(h.countBelow(5), 499);
  assert.equal(h.countBelow(25), 1000);
  assert.equal(g.countBelow(25), 4); // 14.9, 15, 20, 24.99
  const hist = h.histogramExposition('x_hist_seconds', 'help', [5, 25, 1000]);
  assert.match(hist, /^# TYPE x_hist_seconds histogram$/m);
  assert.match(hist, /^x_hist_seconds_bucket\{le="0.005"\} 499$/m);
  assert.match(hist, /^x_hist_seconds_bucket\{le="0.025"\} 1000$/m);
  assert.match(hist, /^x_hist_seconds_bucket\{le="1"\} 1001$/m);
  assert.match(hist, /^x_hist_seconds_bucket\{le="\+Inf"\} 1002$/m);
  assert.match(hist, /^x_hist_seconds_count 1002$/m);
});

test('RTCP: a sender report with our SSRC, packet/octet counts and a reception report block for the caller goes to RTP port + 1', async () => {
  const { RtpSession } = await import('../src/ingress/rtp/rtp-session.js');
  const { RtcpPacketConverter, RtcpSrPacket } = await import('werift-rtp');
  const dgram = await import('node:dgram');
  const { systemClock } = await import('../src/clock/clock.js');
  const { until } = await import('./helpers.js');
  const session = await RtpSession.open(
    {
      clock: systemClock,
      host: '127.0.0.1',
      portMin: 33200,
      portMax: 33300,
      reorderPackets: 2,
      timeoutMs: 0,
      rtcpIntervalMs: 100,
    },
    { onFrame: () => {}, onDtmf: () => {}, onTimeout: () => {} },
  );
  // The caller: RTP on an even port, RTCP on the next one.
  let rtp!: import('node:dgram').Socket;
  let rtcp!: import('node:dgram').Socket;
  for (let port = 34000; port < 34100; port += 2) {
    try {
      rtp = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        rtp.once('error', reject);
        rtp.bind(port, '127.0.0.1', () => resolve());
      });
      rtcp = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        rtcp.once('error', reject);
        rtcp.bind(port + 1, '127.0.0.1', () => resolve());
      });
      break;
    } catch {
      rtp?.close();
    }
  }
  const reports: Buffer[] = [];
  rtcp.on('message', (m) => reports.push(m));
  const port = rtp.address().port;
  session.setMedia({
    payloadType: 0,
    silenceByte: 0xff,
    clockRate: 8000,
    eventPayloadType: null,
    remoteAddress: '127.0.0.1',
    remotePort: port,
    remoteRtcpPort: port + 1,
    direction: 'sendrecv',
  });
  try {
    for (let i = 0; i < 3; i++) {
      const h = Buffer.alloc(172);
      h[0] = 0x80;
      h.writeUInt16BE(500 + i, 2);
      h.writeUInt32BE(1000 + 160 * i, 4);
      h.writeUInt32BE(0xcafe, 8);
      rtp.send(h, session.port, '127.0.0.1');
    }
    await until(() => session.stats.packetsIn === 3, 'caller RTP in');
    for (let i = 0; i < 5; i++) session.sendFrame(new Uint8Array(160)); // 5 ticks = 100 ms → one report
    await until(() => reports.length >= 1, 'RTCP report');
    const [sr] = RtcpPacketConverter.deSerialize(reports[0]!);
    assert.ok(sr instanceof RtcpSrPacket);
    assert.equal(sr.ssrc, session.ssrc);
    assert.equal(sr.senderInfo.packetCount, 5);
    assert.equal(sr.senderInfo.octetCount, 5 * 160);
    assert.equal(sr.reports.length, 1);
    assert.equal(sr.reports[0]!.ssrc, 0xcafe);
    assert.equal(sr.reports[0]!.highestSequence, 502);
    assert.equal(sr.reports[0]!.packetsLost, 0);
  } finally {
    session.close();
    rtp.close();
    rtcp.close();
  }
});

test('RTP I/O thread: datagrams both ways in order and byte-exact, arrival times on the main timeline, sources reported, a taken port refused, ports released on close', async () => {
  const { WorkerUdpIo } = await import('../src/ingress/rtp/udp-io.js');
  const dgram = await import('node:dgram');
  const { until } = await import('./helpers.js');
  const io = new WorkerUdpIo();
  const got: Array<{ channel: number; data: Buffer; from: string; hr: number }> = [];
  const errors: number[] = [];
  const handlers = {
    onPacket: (channel: 0 | 1, data: Buffer, from: { address: string; port: number }, hr: number) =>
      got.push({ channel, data: Buffer.from(data), from: `${from.address}:${from.port}`, hr }),
    onError: () => errors.push(1),
  };
  const peer = dgram.createSocket('udp4');
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
  const fromPeer: Buffer[] = [];
  peer.on('message', (m) => fromPeer.push(m));
  let pair: import('../src/ingress/rtp/udp-io.js').UdpPair | null = null;
  let port = 35000;
  try {
    for (; port < 35100 && !pair; port += 2)
      pair = await io.bindPair('127.0.0.1', port, handlers).catch(() => null);
    port -= 2;
    assert.ok(pair, 'a port pair bound');
    assert.equal(pair.port, port);
    // The same ports again: refused with the socket's error, not a hang.
    await assert.rejects(io.bindPair('127.0.0.1', port, handlers), /EADDRINUSE/);
    // In: 300 datagrams of different sizes to RTP (bursts of 50: a loaded test machine must not
    // overflow the kernel's socket buffer), one to RTCP.
    const sentAt = performance.now();
    for (let i = 0; i < 300; i++) {
      peer.send(Buffer.alloc(12 + (i % 200), i & 0xff), port, '127.0.0.1');
      if (i % 50 === 49) await until(() => got.length > i, `datagram ${i} through the I/O thread`);
    }
    peer.send(Buffer.from('rtcp'), port + 1, '127.0.0.1');
    await until(() => got.length >= 301, '301 datagrams through the I/O thread');
    const receivedBy = performance.now();
    const rtp = got.filter((g) => g.channel === 0);
    assert.equal(rtp.length, 300);
    rtp.forEach((g, i) =>
      assert.ok(g.data.equals(Buffer.alloc(12 + (i % 200), i & 0xff)), `datagram ${i} intact`),
    );
    assert.deepEqual(
      got.filter((g) => g.channel === 1).map((g) => g.data.toString()),
      ['rtcp'],
    );
    assert.ok(got.every((g) => g.from === `127.0.0.1:${peer.address().port}`));
    assert.ok(
      got.every((g) => g.hr >= sentAt - 1 && g.hr <= receivedBy + 1),
      'arrival times on this thread’s clock',
    );
    // Out: 60 datagrams of 1200 bytes sent in one turn of the loop — more than one 60 kB batch —
    // arrive whole and in order.
    for (let i = 0; i < 60; i++) {
      const b = Buffer.alloc(1200, i);
      b.writeUInt16BE(i, 0);
      pair.send(0, b, peer.address().port, '127.0.0.1');
    }
    await until(() => fromPeer.length >= 60, '60 datagrams from the I/O thread');
    assert.deepEqual(
      fromPeer.map((m) => m.readUInt16BE(0)),
      Array.from({ length: 60 }, (_, i) => i),
    );
    assert.ok(fromPeer.every((m, i) => m.length === 1200 && m[1199] === i));
    assert.equal(errors.length, 0);
    // Closing sends what was queued, then frees the ports for a new pair.
    pair.send(1, Buffer.from('last'), peer.address().port, '127.0.0.1');
    pair.close();
    await until(() => fromPeer.some((m) => m.toString() === 'last'), 'the packet queued before close');
    // The worker closes the sockets asynchronously: retry the same ports for up to a second.
    let again: import('../src/ingress/rtp/udp-io.js').UdpPair | null = null;
    for (let attempt = 0; attempt < 50 && !again; attempt++) {
      again = await io.bindPair('127.0.0.1', port, handlers).catch(() => null);
      if (!again) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(again, 'the same ports bound again after close');
  } finally {
    peer.close();
    await io.close();
  }
});
