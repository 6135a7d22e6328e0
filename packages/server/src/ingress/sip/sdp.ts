/**
 * SDP offer/answer for calls (RFC 3264, RFC 4566) with `sdp-transform`: we accept the first audio
 * stream offered over plain RTP, choose the caller's most preferred of PCMU/PCMA, accept
 * telephone-event (RFC 4733) at 8000 Hz, answer ptime 20, and mirror the offered direction (hold:
 * `sendonly` → `recvonly`). Every other m-line is refused with port 0, as §6 requires.
 */
import sdpTransform from 'sdp-transform';
import type { RtpMediaParams } from '../rtp/rtp-session.js';
import { PCMA, PCMU, type CallCodec } from '../../media/codec.js';

/** A successful negotiation. */
export interface SdpAnswer {
  ok: true;
  sdp: string;
  codec: CallCodec;
  media: RtpMediaParams;
}

/** A failed negotiation: `status` is the SIP response to send (400 bad SDP, 488 not acceptable). */
export interface SdpRejection {
  ok: false;
  status: 400 | 488;
  reason: string;
}

/** Our side of the session. */
export interface LocalMedia {
  /** Address for `o=` and `c=`. */
  address: string;
  /** Our RTP port. */
  port: number;
  /** `o=` session id and version (the version increases with each new answer, §8). */
  sessionId: number;
  sessionVersion: number;
}

const CODECS: Record<string, { codec: CallCodec; silence: number; staticPt: number }> = {
  PCMU: { codec: PCMU, silence: 0xff, staticPt: 0 },
  PCMA: { codec: PCMA, silence: 0xd5, staticPt: 8 },
};

type Direction = RtpMediaParams['direction'];
const MIRROR: Record<Direction, Direction> = {
  sendrecv: 'sendrecv',
  sendonly: 'recvonly',
  recvonly: 'sendonly',
  inactive: 'inactive',
};

/**
 * Answers an SDP offer.
 * @returns the answer, or why it cannot be answered (never throws on bad input)
 */
export function answerOffer(
  offer: string,
  local: LocalMedia,
  /** Re-INVITE: the call's codec, which must stay (a call cannot switch codec mid-way; §8 lets us refuse with 488 and keep the old session). */
  keepCodec?: CallCodec['name'],
): SdpAnswer | SdpRejection {
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(offer);
  } catch (e) {
    return { ok: false, status: 400, reason: `unparseable SDP: ${(e as Error).message}` };
  }
  if (!Array.isArray(session.media) || session.media.length === 0)
    return { ok: false, status: 488, reason: 'SDP offer has no media' };
  let chosen: { index: number; pt: number; name: string; eventPt: number | null } | null = null;
  let why = 'no audio stream offered';
  session.media.forEach((m, index) => {
    if (chosen || m.type !== 'audio' || !m.port) return;
    if (!/^RTP\/AVPF?$/.test(m.protocol ?? '')) {
      why = `transport ${m.protocol} is not supported (plain RTP/AVP only)`;
      return;
    }
    const pts = String(m.payloads ?? '')
      .trim()
      .split(/\s+/)
      .map(Number)
      .filter((n) => Number.isInteger(n) && n >= 0 && n <= 127);
    const nameOf = (pt: number): string | undefined => {
      const map = m.rtp?.find((r) => r.payload === pt);
      if (map) return `${map.codec.toUpperCase()}/${map.rate ?? ''}`;
      return pt === 0 ? 'PCMU/8000' : pt === 8 ? 'PCMA/8000' : undefined;
    };
    const audio = pts.find((pt) => {
      const n = nameOf(pt);
      if (keepCodec) return n === `${keepCodec}/8000`;
      return n === 'PCMU/8000' || n === 'PCMA/8000';
    });
    if (audio === undefined) {
      why = `no acceptable codec (offered: ${pts.map((pt) => nameOf(pt) ?? pt).join(', ') || 'none'}; we take ${keepCodec ? `${keepCodec}/8000, the call's codec` : 'PCMU/8000, PCMA/8000'})`;
      return;
    }
    const eventPt = pts.find((pt) => nameOf(pt) === 'TELEPHONE-EVENT/8000') ?? null;
    chosen = { index, pt: audio, name: nameOf(audio)!.split('/')[0]!, eventPt };
  });
  if (!chosen) return { ok: false, status: 488, reason: why };
  const c: { index: number; pt: number; name: string; eventPt: number | null } = chosen;
  const m = session.media[c.index]!;
  const address = m.connection?.ip ?? session.connection?.ip;
  if (!address) return { ok: false, status: 400, reason: 'SDP offer has no connection address (c=)' };
  const offered = (m.direction ?? session.direction ?? 'sendrecv') as Direction;
  let direction = MIRROR[offered] ?? 'sendrecv';
  if (address === '0.0.0.0' && direction === 'sendrecv') direction = 'recvonly'; // RFC 2543 hold
  const spec = CODECS[c.name]!;
  const rtcpPort = typeof m.rtcp?.port === 'number' ? m.rtcp.port : m.port + 1;

  const answerMedia = session.media.map((om, i) => {
    if (i !== c.index) {
      return { type: om.type, port: 0, protocol: om.protocol, payloads: String(om.payloads ?? '0') };
    }
    const payloads = c.eventPt === null ? `${c.pt}` : `${c.pt} ${c.eventPt}`;
    return {
      type: 'audio',
      port: local.port,
      protocol: 'RTP/AVP',
      payloads,
      rtp: [
        { payload: c.pt, codec: c.name, rate: 8000 },
        ...(c.eventPt === null ? [] : [{ payload: c.eventPt, codec: 'telephone-event', rate: 8000 }]),
      ],
      fmtp: c.eventPt === null ? [] : [{ payload: c.eventPt, config: '0-16' }],
      ptime: 20,
      direction,
    };
  });
  const sdp = sdpTransform.write({
    version: 0,
    origin: {
      username: 'callstream',
      sessionId: local.sessionId,
      sessionVersion: local.sessionVersion,
      netType: 'IN',
      ipVer: 4,
      address: local.address,
    },
    name: 'callstream',
    connection: { version: 4, ip: local.address },
    timing: { start: 0, stop: 0 },
    media: answerMedia as sdpTransform.SessionDescription['media'],
  });
  return {
    ok: true,
    sdp,
    codec: spec.codec,
    media: {
      payloadType: c.pt,
      silenceByte: spec.silence,
      clockRate: 8000,
      eventPayloadType: c.eventPt,
      remoteAddress: address,
      remotePort: m.port,
      remoteRtcpPort: rtcpPort,
      direction,
    },
  };
}

/**
 * Our SDP offer: the given G.711 codecs in preference order (outbound calls offer both; an
 * offer-less re-INVITE offers only the call's codec), telephone-event 101, ptime 20, sendrecv.
 */
export function makeOffer(
  local: LocalMedia,
  codecs: ReadonlyArray<'PCMU' | 'PCMA'> = ['PCMU', 'PCMA'],
): string {
  const pts = codecs.map((c) => CODECS[c]!.staticPt);
  return [
    'v=0',
    `o=callstream ${local.sessionId} ${local.sessionVersion} IN IP4 ${local.address}`,
    's=callstream',
    `c=IN IP4 ${local.address}`,
    't=0 0',
    `m=audio ${local.port} RTP/AVP ${pts.join(' ')} 101`,
    ...codecs.map((c, i) => `a=rtpmap:${pts[i]} ${c}/8000`),
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/**
 * Reads the answer to {@link makeOffer} (RFC 3264 §6: the answerer picks from our offer; its
 * first listed codec is the one it will send).
 */
export function readAnswer(answer: string): Omit<SdpAnswer, 'sdp'> | SdpRejection {
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(answer);
  } catch (e) {
    return { ok: false, status: 400, reason: `unparseable SDP answer: ${(e as Error).message}` };
  }
  const m = session.media?.find((x) => x.type === 'audio' && x.port);
  if (!m) return { ok: false, status: 488, reason: 'the answer accepts no audio stream' };
  const pts = String(m.payloads ?? '')
    .trim()
    .split(/\s+/)
    .map(Number);
  const name = (pt: number) =>
    (
      m.rtp?.find((r) => r.payload === pt)?.codec ?? (pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : '')
    ).toUpperCase();
  const pt = pts.find((p) => name(p) === 'PCMU' || name(p) === 'PCMA');
  if (pt === undefined) return { ok: false, status: 488, reason: 'the answer has neither PCMU nor PCMA' };
  const address = m.connection?.ip ?? session.connection?.ip;
  if (!address) return { ok: false, status: 400, reason: 'the answer has no connection address' };
  const spec = CODECS[name(pt)]!;
  const eventPt = pts.find((p) => name(p) === 'TELEPHONE-EVENT') ?? null;
  const answered = (m.direction ?? session.direction ?? 'sendrecv') as Direction;
  return {
    ok: true,
    codec: spec.codec,
    media: {
      payloadType: pt,
      silenceByte: spec.silence,
      clockRate: 8000,
      eventPayloadType: eventPt,
      remoteAddress: address,
      remotePort: m.port,
      remoteRtcpPort: typeof m.rtcp?.port === 'number' ? m.rtcp.port : m.port + 1,
      direction: MIRROR[answered] ?? 'sendrecv',
    },
  };
}
