/**
 * Call admission control: at most `maxConcurrent` calls at once and at most `maxPerSecond` new
 * calls per second, optionally none while the server is saturated (`maxLoad`), whatever their
 * ingress (SIP INVITE, outbound dial, simulated calls). A call beyond any limit is refused before it costs anything (no RTP ports, no answer-URL fetch), so
 * the calls already up keep the latency and pacing the machine was sized for (README "Load
 * benchmark": the largest N with every guarantee is the `maxConcurrent` to set). SIP answers a
 * refused INVITE `503 Service Unavailable` (RFC 3261 §21.5.4), the REST API HTTP 503.
 *
 * Policy:
 * - Concurrency counts every call from admission to its end (set-up included: a burst of INVITEs
 *   cannot all pass while their answer URLs are being fetched). No `Retry-After`: when a place
 *   frees is unknown, and RFC 3263 §4.3 has a proxy treat the server as down for that long.
 * - Rate: a token bucket of `maxPerSecond` tokens (one second of burst, at least one call) refilled
 *   continuously; a refusal says when the next token is due (`Retry-After`, whole seconds, at
 *   least 1). A call refused for another reason takes no token.
 * - Load: while the main thread's event-loop utilisation over the last second (the share of time
 *   it was not idle, Node's `performance.eventLoopUtilization()`: the media clock, playout and
 *   every stream run there) is at least `maxLoad`, new calls are refused with `Retry-After: 1` (the
 *   next reading) — as FreeSWITCH's `min-idle-cpu` does. A server that is already saturated makes
 *   every call up late (docs/performance.md: the seconds at 94–99 % of a core are the ones with
 *   ≥ 25 ms waits); on a VM whose speed varies, capacity is not one number.
 *
 * {@link CallAdmission} is pure: time and load come from injected functions (tests move a fake
 * clock, set a fake load); {@link LoadMeter} reads the real event loop.
 */
import { performance } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../clock/clock.js';
import { CallstreamError } from '../errors.js';

/** The limits (config `calls`). 0 = no limit. */
export interface AdmissionLimits {
  /** Most calls at once, set-up included; 0: unlimited. */
  maxConcurrent: number;
  /** Most new calls per second (token bucket, burst of one second); 0: unlimited. */
  maxPerSecond: number;
  /** Refuse new calls while the load (0…1) is at least this; 0: never. */
  maxLoad?: number;
}

/** Why a call was refused (`callstream_calls_refused_total{reason}`). */
export type RefusalReason = 'max_concurrent' | 'max_rate' | 'overload';

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
 * `reason` and, for the rate and load limits, `retryAfterS` (seconds until a call may be admitted;
 * null for the concurrency limit).
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

/** A refusal episode ends with the first call admitted this long (ms) after the last refusal. */
export const EPISODE_QUIET_MS = 1000;

/** Admission of new calls against {@link AdmissionLimits}. */
export class CallAdmission {
  private activeCalls = 0;
  /** Bucket size: one second of calls, at least one. */
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;
  private refusing: RefusalReason | null = null;
  private lastRefusalAt = -Infinity;
  readonly stats: AdmissionStats = {
    admitted: 0,
    refused: { max_concurrent: 0, max_rate: 0, overload: 0 },
  };

  /**
   * @param limits 0 disables a limit
   * @param now the clock, ms (the runtime's epoch clock; only differences are used, a step back
   *   counts as none)
   * @param onChange told when refusals start (`reason`, or a new one) and when calls are admitted
   *   again after {@link EPISODE_QUIET_MS} without a refusal (`null`): a log line per episode, not
   *   per refused call — a flood at twice the rate limit alternates admit and refuse
   * @param load the latest load reading, 0…1 (the runtime's: event-loop utilisation over the last
   *   second); read only when `maxLoad` is set
   * @throws RangeError for a negative or non-finite limit, a non-integer `maxConcurrent`, or a
   *   `maxLoad` over 1
   */
  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number,
    private readonly onChange?: (refusing: RefusalReason | null, limits: AdmissionLimits) => void,
    private readonly load: () => number = () => 0,
  ) {
    const maxLoad = limits.maxLoad ?? 0;
    if (!Number.isFinite(maxLoad) || maxLoad < 0 || maxLoad > 1)
      throw new RangeError(`maxLoad must be within 0…1, not ${maxLoad}`);
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
   * @throws CapacityError when `maxConcurrent` calls are active, the load is at `maxLoad` or over,
   *   or no rate token is left
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
    const maxLoad = this.limits.maxLoad ?? 0;
    if (maxLoad > 0) {
      const load = this.load();
      if (load >= maxLoad) {
        throw this.refuse(
          'overload',
          `server overloaded: event loop ${Math.round(load * 100)} % busy over the last second (config calls.maxLoad ${maxLoad})`,
          1,
        );
      }
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
    if (this.refusing !== null && this.now() - this.lastRefusalAt >= EPISODE_QUIET_MS) {
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
    this.lastRefusalAt = this.now();
    if (this.refusing !== reason) {
      this.refusing = reason;
      this.onChange?.(reason, this.limits);
    }
    return new CapacityError(reason, message, retryAfterS);
  }
}

/**
 * The main thread's event-loop utilisation over the last whole second (0…1: the share of time the
 * loop was not waiting for I/O; Node's `performance.eventLoopUtilization()`), read once a second on
 * the injected clock — the load {@link CallAdmission} compares with `maxLoad`. Until the first
 * second has passed it reads 0. `stop()` ends the timer (the runtime's close).
 */
export class LoadMeter {
  private last = performance.eventLoopUtilization();
  private timer: TimerHandle | undefined;
  /** Utilisation over the last whole second, 0…1. */
  utilization = 0;

  constructor(private readonly clock: Clock) {
    this.timer = clock.setTimeout(() => this.sample(), 1000);
  }

  private sample(): void {
    const now = performance.eventLoopUtilization();
    this.utilization = performance.eventLoopUtilization(now, this.last).utilization;
    this.last = now;
    this.timer = this.clock.setTimeout(() => this.sample(), 1000);
  }

  /** Stops sampling (idempotent). */
  stop(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
