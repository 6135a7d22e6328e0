/**
 * Call admission control: at most `maxConcurrent` calls at once and at most `maxPerSecond` new
 * calls per second, whatever their ingress (SIP INVITE, outbound dial, simulated calls). A call
 * beyond either limit is refused before it costs anything (no RTP ports, no answer-URL fetch), so
 * the calls already up keep the latency and pacing the machine was sized for (README "Load
 * benchmark": the largest N with every guarantee is the `maxConcurrent` to set). SIP answers a
 * refused INVITE `503 Service Unavailable` (RFC 3261 §21.5.4), the REST API HTTP 503.
 *
 * Policy:
 * - Concurrency counts every call from admission to its end (set-up included: a burst of INVITEs
 *   cannot all pass while their answer URLs are being fetched). No `Retry-After`: when a place
 *   frees is unknown, and RFC 3263 §4.3 has a proxy treat the server as down for that long.
 * - Rate: a token bucket of `maxPerSecond` tokens (one second of burst, at least one call) refilled
 *   continuously;
 *   a refusal says when the next token is due (`Retry-After`, whole seconds, at least 1). A call
 *   refused for concurrency takes no token.
 *
 * Pure: time comes from the injected clock (tests move a fake one).
 */
import { CallstreamError } from '../errors.js';

/** The limits (config `calls`). 0 = no limit. */
export interface AdmissionLimits {
  /** Most calls at once, set-up included; 0: unlimited. */
  maxConcurrent: number;
  /** Most new calls per second (token bucket, burst of one second); 0: unlimited. */
  maxPerSecond: number;
}

/** Why a call was refused (`callstream_calls_refused_total{reason}`). */
export type RefusalReason = 'max_concurrent' | 'max_rate';

/** Counters (for `/metrics`). */
export interface AdmissionStats {
  admitted: number;
  refused: Record<RefusalReason, number>;
}

/** A place held by one admitted call; `release()` (idempotent) gives it back when the call ends. */
export interface AdmissionTicket {
  release(): void;
}

/**
 * Thrown by {@link CallAdmission.admit}: code `capacity_exceeded` (HTTP 503, retryable), with the
 * `reason` and, for the rate limit, `retryAfterS` (seconds until a call would be admitted).
 */
export class CapacityError extends CallstreamError {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    readonly retryAfterS: number | null,
  ) {
    super('capacity_exceeded', message);
    this.name = 'CapacityError';
  }
}

/** Admission of new calls against {@link AdmissionLimits}. */
export class CallAdmission {
  private activeCalls = 0;
  /** Bucket size: one second of calls, at least one. */
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;
  private refusing: RefusalReason | null = null;
  readonly stats: AdmissionStats = { admitted: 0, refused: { max_concurrent: 0, max_rate: 0 } };

  /**
   * @param limits 0 disables a limit
   * @param now the clock, ms (the runtime's epoch clock; only differences are used, a step back
   *   counts as none)
   * @param onChange told when refusals start (`reason`) and when calls are admitted again (`null`),
   *   for one log line per episode instead of one per refused call
   * @throws RangeError for a negative or non-finite limit, or a non-integer `maxConcurrent`
   */
  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number,
    private readonly onChange?: (refusing: RefusalReason | null, limits: AdmissionLimits) => void,
  ) {
    if (!Number.isInteger(limits.maxConcurrent) || limits.maxConcurrent < 0)
      throw new RangeError(`maxConcurrent must be an integer ≥ 0, not ${limits.maxConcurrent}`);
    if (!Number.isFinite(limits.maxPerSecond) || limits.maxPerSecond < 0)
      throw new RangeError(`maxPerSecond must be ≥ 0, not ${limits.maxPerSecond}`);
    this.burst = Math.max(1, limits.maxPerSecond);
    this.tokens = this.burst;
    this.refilledAt = now();
  }

  /** Calls admitted and not yet released. */
  get active(): number {
    return this.activeCalls;
  }

  /**
   * Admits one call, or refuses it.
   * @returns the call's ticket: release it when the call ends (or its set-up fails)
   * @throws CapacityError when `maxConcurrent` calls are active, or no rate token is left
   */
  admit(): AdmissionTicket {
    const { maxConcurrent, maxPerSecond } = this.limits;
    if (maxConcurrent > 0 && this.activeCalls >= maxConcurrent) {
      throw this.refuse(
        'max_concurrent',
        `call limit reached: ${maxConcurrent} calls at once (config calls.maxConcurrent)`,
        null,
      );
    }
    if (maxPerSecond > 0) {
      const t = this.now();
      const elapsed = Math.max(0, t - this.refilledAt); // a wall clock stepped back refills nothing
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * maxPerSecond) / 1000);
      this.refilledAt = t;
      if (this.tokens < 1) {
        const retryAfterS = Math.max(1, Math.ceil((1 - this.tokens) / maxPerSecond));
        throw this.refuse(
          'max_rate',
          `call rate limit reached: ${maxPerSecond} new calls per second (config calls.maxPerSecond)`,
          retryAfterS,
        );
      }
      this.tokens -= 1;
    }
    this.activeCalls++;
    this.stats.admitted++;
    if (this.refusing !== null) {
      this.refusing = null;
      this.onChange?.(null, this.limits);
    }
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.activeCalls--;
      },
    };
  }

  private refuse(reason: RefusalReason, message: string, retryAfterS: number | null): CapacityError {
    this.stats.refused[reason]++;
    if (this.refusing !== reason) {
      this.refusing = reason;
      this.onChange?.(reason, this.limits);
    }
    return new CapacityError(reason, message, retryAfterS);
  }
}
