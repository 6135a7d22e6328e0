/**
 * Composition root: the only place concrete classes are wired together (design.md).
 */
import pino, { type Logger } from 'pino';
import { systemClock, type Clock, type MediaClock } from './clock/clock.js';
import { RealMediaClock, type MediaClockStats } from './clock/media-clock.js';
import type { Config } from './config/config.js';
import { HttpCallbackSender, type CallbackOutbox } from './callbacks/http-callbacks.js';
import { AppHttpClient } from './callbacks/app-http.js';
import { Call, type CallInfo } from './call/call.js';
import type { CallLeg } from './call/call-leg.js';
import { USER_AGENT } from './version.js';
import type { XmlSession } from './xml/interpreter.js';
import { SpeechSynthesizer } from './media/tts.js';
import { createEngineLatency, type EngineLatency } from './metrics/latency.js';
import { CatchUpBudget } from './media/playout.js';
import { CallAdmission, LoadMeter, type AdmissionTicket } from './call/admission.js';

/** The running pieces shared by every call. */
export interface Runtime {
  readonly config: Config;
  readonly clock: Clock;
  readonly mediaClock: MediaClock;
  readonly callbacks: HttpCallbackSender;
  /** HTTP toward apps (documents, callbacks): one keep-alive pool, closed with the runtime. */
  readonly http: AppHttpClient;
  readonly logger: Logger;
  /**
   * Creates a call on a leg. `admission`: the call's place from {@link admission}, released when
   * the call ends (every ingress admits a call before setting it up; SIP ties the place to the
   * call's RTP session instead, so it passes none).
   */
  newCall(leg: CallLeg, info?: Partial<CallInfo>, admission?: AdmissionTicket): Call;
  /** Admission control of new calls (config `calls`). */
  readonly admission: CallAdmission;
  /** Engine latency histograms (exported on /metrics). */
  readonly latency: EngineLatency;
  /** Media-clock counters (ticks, skipped, preempted, deferred) when the real clock runs. */
  readonly mediaClockStats: MediaClockStats | null;
  /** Accelerated frames allowed per tick across all streams (`stream.playoutCatchUpFramesPerTick`). */
  readonly catchUpBudget: CatchUpBudget;
  /** Text to speech for `<Speak>` (worker thread, started on first use). */
  readonly speech: SpeechSynthesizer;
  /** Running XML call flows by CallUUID (transfer finds them here). */
  readonly xmlSessions: Map<string, XmlSession>;
  /** Subscribes to call creation (records, metrics). */
  onCallCreated(listener: (call: Call) => void): void;
  /** Hangs up every call and stops deliveries. */
  close(): Promise<void>;
}

/** Overrides for tests: fake clocks, a silent logger. */
export interface RuntimeOverrides {
  clock?: Clock;
  mediaClock?: MediaClock;
  logger?: Logger;
  /** Durable outbox for status callbacks. */
  outbox?: CallbackOutbox;
}

/** Wires a runtime from a validated configuration. */
export function createRuntime(config: Config, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? pino({ level: config.log.level, base: { service: 'callstream' } });
  const clock = overrides.clock ?? systemClock;
  const latency = createEngineLatency();
  const realClock = overrides.mediaClock
    ? null
    : new RealMediaClock({
        onError: (err) => logger.error({ err }, 'media tick handler failed'),
        onLateness: (ms) => latency.tickLateness.record(ms),
        onDuration: (ms) => latency.tickDuration.record(ms),
      });
  const mediaClock = overrides.mediaClock ?? realClock!;
  const http = new AppHttpClient({ clock });
  const callbacks = new HttpCallbackSender({
    clock,
    http,
    authToken: config.authToken,
    userAgent: USER_AGENT,
    timeoutMs: config.callbacks.timeoutMs,
    retryDelaysMs: config.callbacks.retryDelaysMs,
    ...(overrides.outbox ? { outbox: overrides.outbox } : {}),
  });
  const calls = new Set<Call>();
  const catchUpBudget = new CatchUpBudget(config.stream.playoutCatchUpFramesPerTick);
  const speech = new SpeechSynthesizer();
  const callListeners: Array<(call: Call) => void> = [];
  const load = config.calls.maxLoad > 0 ? new LoadMeter(clock) : null;
  const admission = new CallAdmission(
    config.calls,
    () => clock.now(),
    (refusing, limits) => {
      if (refusing) logger.warn({ reason: refusing, limits }, 'refusing new calls: limit reached');
      else logger.info('admitting new calls again');
    },
    () => load?.utilization ?? 0,
  );
  return {
    config,
    clock,
    mediaClock,
    callbacks,
    http,
    logger,
    xmlSessions: new Map(),
    latency,
    mediaClockStats: realClock ? realClock.stats : null,
    catchUpBudget,
    speech,
    admission,
    newCall(leg, info, ticket) {
      const call = new Call(
        { clock, mediaClock, config, userAgent: USER_AGENT, callbacks, logger, latency, catchUpBudget },
        leg,
        info,
      );
      calls.add(call);
      void call.done.then(() => {
        calls.delete(call);
        ticket?.release();
      });
      for (const l of callListeners) l(call);
      return call;
    },
    onCallCreated(listener) {
      callListeners.push(listener);
    },
    async close() {
      load?.stop();
      for (const c of calls) c.hangup('SHUTDOWN', { shutdown: true });
      callbacks.close();
      await speech.close();
      await http.close(); // after the server's bounded drain: what is still in flight stays pending
    },
  };
}
