/**
 * RTP reorder buffer (RFC 3550 §A.1 sequence arithmetic): a small window driven only by RTP
 * sequence numbers — never wall time — that turns arriving packets into an in-order series,
 * dropping duplicates and late packets and giving up on a missing packet once `windowPackets`
 * later ones are waiting.
 */

/** Why a packet was not released. */
export type RejectReason = 'duplicate_or_late' | 'window_overflow';

/** What the buffer releases, in sequence order. */
export interface ReorderSink<P> {
  /** The next packet in order. `lost` = packets skipped just before it (0 normally). */
  onPacket(packet: P, lost: number): void;
  /** A packet that will never be released. */
  onReject?(reason: RejectReason): void;
}

/** Signed distance b − a in 16-bit sequence space (−32768…32767). */
export function seqDelta(a: number, b: number): number {
  return (((b - a) & 0xffff) << 16) >> 16;
}

/** Sequence jumps larger than this restart the series (a new sender or a restarted source). */
const RESTART_DELTA = 3000;

/**
 * Orders packets by RTP sequence number.
 * `windowPackets` = packets held while waiting for a missing one (0 = release everything at once,
 * skipping gaps). Holding `w` packets adds at most `w × ptime` of delay, only while a packet is missing.
 */
export class ReorderBuffer<P> {
  private expected = -1;
  private readonly held = new Map<number, P>();
  /** Counters: released, lost (skipped), rejected. */
  readonly stats = { released: 0, lost: 0, rejected: 0, restarts: 0 };

  constructor(
    private readonly windowPackets: number,
    private readonly sink: ReorderSink<P>,
  ) {}

  /** Offers one packet with its 16-bit sequence number. */
  push(seq: number, packet: P): void {
    if (this.expected < 0) {
      this.release(seq, packet, 0);
      return;
    }
    const d = seqDelta(this.expected, seq);
    if (d < 0 || this.held.has(seq)) {
      if (d < -RESTART_DELTA) return this.restart(seq, packet);
      this.stats.rejected++;
      this.sink.onReject?.('duplicate_or_late');
      return;
    }
    if (d === 0) {
      this.release(seq, packet, 0);
      this.drain();
      return;
    }
    if (d > RESTART_DELTA) return this.restart(seq, packet);
    this.held.set(seq, packet);
    if (this.held.size > this.windowPackets) this.skipToOldestHeld();
  }

  /** Releases everything held (end of media), skipping gaps. */
  flush(): void {
    while (this.held.size > 0) this.skipToOldestHeld();
  }

  private restart(seq: number, packet: P): void {
    this.stats.restarts++;
    this.flush();
    this.release(seq, packet, 0);
  }

  private skipToOldestHeld(): void {
    let best = -1;
    let bestDelta = Infinity;
    for (const s of this.held.keys()) {
      const d = seqDelta(this.expected, s);
      if (d < bestDelta) {
        bestDelta = d;
        best = s;
      }
    }
    const p = this.held.get(best)!;
    this.held.delete(best);
    this.stats.lost += bestDelta;
    this.release(best, p, bestDelta);
    this.drain();
  }

  private drain(): void {
    for (;;) {
      const p = this.held.get(this.expected);
      if (p === undefined) return;
      this.held.delete(this.expected);
      this.release(this.expected, p, 0);
    }
  }

  private release(seq: number, packet: P, lost: number): void {
    this.expected = (seq + 1) & 0xffff;
    this.stats.released++;
    this.sink.onPacket(packet, lost);
  }
}
