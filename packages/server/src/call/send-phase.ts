import { PTIME_MS, SLOT_MS, TICK_SLOTS, mod } from '../clock/clock.js';

/**
 * Longest lead, ms: the band a call stays in reaches 5.5 ms beyond the lead and must end well
 * before the arrivals come round again (20 ms on): a slot due just before them is the trap the
 * class comment describes.
 */
export const MAX_LEAD_MS = 12;

/** Tuning of {@link SendPhase}; the defaults are what the server uses. */
export interface SendPhaseOptions {
  /**
   * Weight of each new arrival in the running phase estimate once it has that many (default 1/32:
   * the last ~60 arrivals count; before, a plain mean).
   */
  alpha?: number;
  /** Live arrivals seen before the first move (default 16). */
  minArrivals?: number;
  /**
   * How tightly the arrivals must cluster (length of the mean phase vector, 0…1; default 0.6): an
   * app whose audio lands at any phase gains nothing from a move.
   */
  minConcentration?: number;
  /** Ticks between two moves at least (default 25 = 0.5 s). */
  minTicksBetweenMoves?: number;
  /** Moves available at once (default 3: any slot is at most 2 steps away) … */
  burstMoves?: number;
  /** … and one more every this many ticks (default 500 = 10 s: follows a caller clock ~100 ppm off). */
  refillTicks?: number;
  /** Ticks without a straggler before the added lead shrinks by 1 ms (default 1500 = 30 s). */
  leadDecayTicks?: number;
  /**
   * The least lead, ms (default 4; config `stream.playoutSendLeadMs`, 0.5–{@link MAX_LEAD_MS}):
   * with the 4 ms grace window a frame may come lead + 4 ms after the mean arrival before its
   * packet goes out silent. Measured: with 0.5 ms, the in-process echo of the e2e speech test
   * (event-loop jitter of a loaded 2-core machine) ran dry several times a call; on a saturated
   * server 12 ms beat 4 (README "Send-phase alignment").
   */
  minLeadMs?: number;
}

/**
 * Chooses a call's send slot (clock.ts `TICK_SLOTS`) from the phase at which its app's live audio
 * arrives, so the frame goes out a few ms after the audio comes in, not up to 20 ms later.
 *
 * "Live" arrivals are the `playAudio` messages whose audio plays at the call's next send (the queue
 * held less than a frame): an app answering each caller frame at once, a bot streaming at real-time
 * pace. Audio sent ahead waits in the queue anyway and says nothing about phase.
 *
 * The phase estimate is a running circular mean (unit vectors on the 20 ms circle, so 19.5 and
 * 0.5 ms average to 0, not 10); its length R says how tightly the arrivals cluster — random phases
 * average to a short vector (R² ≈ 1/n), so a scattered app never moves the call — and gives their
 * spread, the circular standard deviation σ = √(−2 ln R).
 *
 * The slot should be due just *after* the arrivals, by a lead of 3σ − 3.5 ms (that rule at most
 * 8; at least `minLeadMs`, 4 by default): the frame is then queued when its slot comes and waits
 * `lead` + up to one slot (5 ms). A straggler up to 4 ms past the slot is still sent on arrival (the tick's grace
 * window holds the packet), so 3σ of jitter costs nothing. A slot due *before* the arrivals would be a trap: the first
 * frame of a talk spurt finds no packet held for it, waits almost a whole tick, and every later
 * frame then waits behind one — a steady 18 ms that looks like no backlog at all (measured: 20 echo
 * calls, playAudio→RTP p50 16 ms with such a rule). The call stays while its slot is due between
 * `lead − 1.5` (never before the arrivals) and `lead + 5.5` ms after them (the estimate of σ wanders;
 * the band keeps it from moving the call to and fro), and otherwise moves one
 * slot (5 ms) toward the first slot due at least `lead` after them. One step at a time keeps every
 * packet interval within 20 ± 5 ms; the moves are rate limited (a token bucket), so an app whose
 * audio follows our own sends cannot drag the call round the circle more than once per
 * `refillTicks`.
 *
 * Jitter has tails σ does not see (a stall of the app, or of this server, delays a few frames by
 * 10 ms or more). When the call's frame was held for audio that then came after the grace window
 * ({@link late}), the lead grows by 2 ms (up to 10 ms more; the whole lead at most
 * {@link MAX_LEAD_MS}), and it shrinks again by 1 ms per 30 s without such a straggler (slowly:
 * every move back and forth costs two uneven packet intervals) — an adaptive target delay, as
 * jitter buffers keep one. The band is measured forward from the arrivals, 0–20 ms (on a −10…10
 * circle, before, a lead over 4.5 ms moved a call to and fro as the estimate wandered).
 *
 * Pure: fed phases and ticks, returns decisions. Source: design.md "Real-time rules" (one media clock).
 */
export class SendPhase {
  private x = 0;
  private y = 0;
  private arrivals = 0;
  private ticksSinceMove = Infinity;
  private tokens: number;
  private sinceRefill = 0;
  /** Lead added after stragglers ({@link late}), ms. */
  private extraLeadMs = 0;
  private sinceLate = 0;
  /** Moves made (statistics). */
  moves = 0;
  private readonly o: Required<SendPhaseOptions>;

  constructor(options: SendPhaseOptions = {}) {
    this.o = {
      alpha: options.alpha ?? 1 / 32,
      minArrivals: options.minArrivals ?? 16,
      minConcentration: options.minConcentration ?? 0.6,
      minTicksBetweenMoves: options.minTicksBetweenMoves ?? 25,
      burstMoves: options.burstMoves ?? 3,
      refillTicks: options.refillTicks ?? 500,
      leadDecayTicks: options.leadDecayTicks ?? 1500,
      minLeadMs: options.minLeadMs ?? 4,
    };
    this.tokens = this.o.burstMoves;
  }

  /** A live `playAudio` arrived at `phaseMs` ∈ [0, 20) of the media clock's period. */
  arrival(phaseMs: number): void {
    const a = (2 * Math.PI * phaseMs) / PTIME_MS;
    const k = Math.max(1 / (this.arrivals + 1), this.o.alpha);
    this.x += k * (Math.cos(a) - this.x);
    this.y += k * (Math.sin(a) - this.y);
    this.arrivals++;
  }

  /** Mean arrival phase, ms in [0, 20), and how tightly arrivals cluster (0…1); null before any. */
  estimate(): { phaseMs: number; concentration: number } | null {
    if (this.arrivals === 0) return null;
    const p = mod((Math.atan2(this.y, this.x) * PTIME_MS) / (2 * Math.PI), PTIME_MS);
    return { phaseMs: p, concentration: Math.hypot(this.x, this.y) };
  }

  /**
   * The call held its frame for this app's audio and the audio came, but after the grace window:
   * a straggler the lead did not cover. Raises the lead by 2 ms (at most 10 ms above the σ rule).
   */
  late(): void {
    this.extraLeadMs = Math.min(10, this.extraLeadMs + 2);
    this.sinceLate = 0;
  }

  /** How long after the mean arrival the call's slot should be due now, ms. */
  leadMs(): number {
    return this.leadFor(this.estimate());
  }

  private leadFor(e: { concentration: number } | null): number {
    return Math.min(
      MAX_LEAD_MS,
      Math.max(this.o.minLeadMs, e ? leadMs(e.concentration) : 0) + this.extraLeadMs,
    );
  }

  /**
   * Called once per tick of the call, with the slot it runs in.
   * @returns the step to take now: +1 (one slot later), −1 (earlier) or 0 (stay); call
   *   {@link moved} once it is taken
   */
  onTick(slot: number): 1 | -1 | 0 {
    this.ticksSinceMove++;
    if (++this.sinceRefill >= this.o.refillTicks) {
      this.sinceRefill = 0;
      this.tokens = Math.min(this.o.burstMoves, this.tokens + 1);
    }
    if (++this.sinceLate >= this.o.leadDecayTicks) {
      this.sinceLate = 0;
      this.extraLeadMs = Math.max(0, this.extraLeadMs - 1);
    }
    if (this.arrivals < this.o.minArrivals || this.tokens < 1) return 0;
    if (this.ticksSinceMove < this.o.minTicksBetweenMoves) return 0;
    const e = this.estimate()!;
    if (e.concentration < this.o.minConcentration) return 0;
    const lead = this.leadFor(e);
    // Our due time after the arrivals, on the 20 ms circle: [0, 20) (a slot due just before them
    // is 19.x ms after the previous ones — beyond every band, MAX_LEAD_MS).
    const d = mod(slot * SLOT_MS - e.phaseMs, PTIME_MS);
    if (d >= Math.max(0, lead - 1.5) && d < lead + 5.5) return 0;
    const target = mod(Math.ceil((e.phaseMs + lead) / SLOT_MS), TICK_SLOTS);
    const diff = mod(target - slot, TICK_SLOTS);
    if (diff === 0) return 0;
    return diff === 1 ? 1 : -1;
  }

  /** The step {@link onTick} asked for was taken (the clock may refuse one: then nothing is spent). */
  moved(): void {
    this.tokens--;
    this.ticksSinceMove = 0;
    this.moves++;
  }
}

/**
 * How long after the mean arrival the slot should be due for arrivals this spread, ms: 3σ − 3.5
 * within [0.5, 8] (the 4 ms grace window covers the rest of 3σ), σ the arrivals' circular standard
 * deviation in ms (from the mean vector's length `r`). {@link SendPhase} uses at least its
 * `minLeadMs`.
 */
export function leadMs(r: number): number {
  const sigma = (Math.sqrt(-2 * Math.log(Math.min(1, Math.max(r, 1e-9)))) * PTIME_MS) / (2 * Math.PI);
  return Math.min(8, Math.max(0.5, 3 * sigma - 3.5));
}
