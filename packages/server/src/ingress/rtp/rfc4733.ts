/**
 * RFC 4733 telephone-events (DTMF): the receiver turns event packets into one key press per event
 * (§2.5.1.3: an event is identified by its RTP timestamp; retransmitted end packets and repeated
 * updates are the same event), the encoder makes the packet series of one digit (§2.5.1: updates
 * every packet interval with a growing duration, the end bit, the final packet sent three times).
 */

const DIGITS = '0123456789*#ABCD';

/** Event code (0–15) of a DTMF digit, or -1. */
export function dtmfEventCode(digit: string): number {
  return DIGITS.indexOf(digit.toUpperCase());
}

/** One decoded event packet payload (§2.3). */
export interface TelephoneEvent {
  /** 0–15 for DTMF. */
  event: number;
  end: boolean;
  /** −dBm0, 0–63. */
  volume: number;
  /** Samples (timestamp units). */
  duration: number;
}

/** Parses the 4-byte payload; null if too short. */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | null {
  if (payload.length < 4) return null;
  return {
    event: payload[0]!,
    end: (payload[1]! & 0x80) !== 0,
    volume: payload[1]! & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

/**
 * Deduplicates telephone-events into key presses: the first packet of a new event (new RTP
 * timestamp) reports its digit once; later updates, end packets and their retransmissions of the
 * same timestamp are absorbed. Non-DTMF events (codes > 15) are counted and ignored.
 */
export class DtmfReceiver {
  private lastTimestamp = -1;
  readonly stats = { digits: 0, ignored: 0 };

  constructor(private readonly onDigit: (digit: string) => void) {}

  /** Offers one event packet (any order within the event). */
  receive(rtpTimestamp: number, payload: Uint8Array): void {
    const ev = parseTelephoneEvent(payload);
    if (!ev || ev.event > 15) {
      this.stats.ignored++;
      return;
    }
    if (rtpTimestamp === this.lastTimestamp) return;
    this.lastTimestamp = rtpTimestamp;
    this.stats.digits++;
    this.onDigit(DIGITS[ev.event]!);
  }
}

/** One packet of an outgoing event series. */
export interface EventPacket {
  payload: Uint8Array;
  /** Set on the first packet of the event (§2.5.1.1 marker bit). */
  marker: boolean;
}

/**
 * The packets of one digit lasting `durationMs`, one per `ptimeMs`, all sharing the event's RTP
 * timestamp: updates with growing duration, then the end packet three times (§2.5.1.4).
 * @throws RangeError on a character that is not a DTMF digit
 */
export function encodeDtmfEvent(
  digit: string,
  durationMs: number,
  sampleRate: number,
  ptimeMs = 20,
  volume = 10,
): EventPacket[] {
  const code = dtmfEventCode(digit);
  if (code < 0) throw new RangeError(`not a DTMF digit: ${JSON.stringify(digit)}`);
  const step = (sampleRate * ptimeMs) / 1000;
  const total = Math.max(1, Math.round(durationMs / ptimeMs));
  const out: EventPacket[] = [];
  const make = (duration: number, end: boolean) => {
    const p = new Uint8Array(4);
    p[0] = code;
    p[1] = (end ? 0x80 : 0) | (volume & 0x3f);
    const d = Math.min(0xffff, duration);
    p[2] = d >> 8;
    p[3] = d & 0xff;
    return p;
  };
  for (let i = 1; i < total; i++) out.push({ payload: make(i * step, false), marker: i === 1 });
  for (let i = 0; i < 3; i++) out.push({ payload: make(total * step, true), marker: total === 1 && i === 0 });
  return out;
}
