/**
 * A call: owns its leg and its streams, mixes the outbound track on the one media clock, and closes
 * everything it owns when it ends (lifetimes are a tree, design.md).
 */
import type { Logger } from 'pino';
import { newUuid, type StreamParams } from '@callstream/protocol';
import { PTIME_MS, TICK_SLOTS, mod, type Clock, type MediaClock } from '../clock/clock.js';
import type { Config } from '../config/config.js';
import { attachStatusCallbacks } from '../callbacks/stream-callbacks.js';
import type { HttpCallbackSender } from '../callbacks/http-callbacks.js';
import { encodeCallAudio, samplesPerFrame } from '../media/codec.js';
import type { CatchUpBudget, PullResult } from '../media/playout.js';
import { Stream } from '../stream/stream.js';
import { DebugLog } from '../stream/debug-log.js';
import type { CallLeg } from './call-leg.js';
import { SendPhase } from './send-phase.js';
import type { EngineLatency } from '../metrics/latency.js';

/** Dependencies of a call. */
export interface CallDeps {
  clock: Clock;
  mediaClock: MediaClock;
  config: Config;
  userAgent: string;
  callbacks: HttpCallbackSender;
  logger?: Logger;
  latency?: EngineLatency;
  /** Shared by every stream of the process (see {@link CatchUpBudget}). */
  catchUpBudget?: CatchUpBudget;
}

/** Identity of a call as the app sees it (answer-URL parameters). */
export interface CallInfo {
  callId: string;
  from: string;
  to: string;
  direction: 'inbound' | 'outbound';
}

/** A source of outbound audio besides stream playback (an XML element: Speak, Play…). */
export interface OutboundSource {
  /** Writes up to one frame into `frame` (zero-filled); returns true if it wrote audio. */
  pull(frame: Int16Array): boolean;
}

/** Counters of a call. */
export interface CallStats {
  framesIn: number;
  framesOut: number;
  /** Frames sent that carried queued playback. */
  playbackFrames: number;
}

/** One call and everything it owns. */
export class Call {
  readonly info: CallInfo;
  readonly streams = new Map<string, Stream>();
  readonly stats: CallStats = { framesIn: 0, framesOut: 0, playbackFrames: 0 };
  /** The call's own debug log (XML warnings, fetch failures). */
  readonly debugLog: DebugLog;
  /** Answer time, epoch ms. */
  readonly startedAt: number;
  endedAt: number | null = null;
  /** Resolves with the hangup cause when the call has ended. */
  readonly done: Promise<string>;
  private resolveDone!: (cause: string) => void;
  private unsubscribeTick: (() => void) | null = null;
  private readonly frameSamples: number;
  private readonly mix: Int16Array;
  /** Per-tick list of the playout pulls to acknowledge once the frame is sent (reused). */
  private readonly pulled: Array<[Stream, PullResult]> = [];
  private readonly scratch: Int16Array;
  private readonly silence: Uint8Array;
  private source: OutboundSource | null = null;
  private readonly streamListeners: Array<(s: Stream) => void> = [];
  /** The media clock's preemption point, handed to this call's streams. */
  private readonly preempt = (): void => this.deps.mediaClock.runIfDue?.();
  /** Due time (epoch ms) of the tick whose frame is held in the grace window; null: none held. */
  private heldTickMs: number | null = null;
  /** Grace-window deadline: sends the held frame as it is (`true`: it was still held). */
  private readonly sendHeld = (): boolean => {
    if (!this.sendHeldFrame()) return false;
    this.expiredAt = this.deps.clock.now();
    return true;
  };
  /** When a held frame last went out without its audio (epoch ms); null: none pending. */
  private expiredAt: number | null = null;
  /**
   * A stream handled an app message: note a live arrival's phase (send-phase alignment), send the
   * held frame once no stream waits any longer.
   */
  private readonly onPlayback = (live: boolean): void => {
    if (live && this.sendPhase) {
      this.sendPhase.arrival(this.deps.mediaClock.phaseMs!());
      // Audio within a tick of a held frame that went out without it: a straggler, not a pause.
      if (this.expiredAt !== null && this.deps.clock.now() - this.expiredAt < PTIME_MS) this.sendPhase.late();
      this.expiredAt = null;
    }
    if (this.heldTickMs !== null && !this.waitingForPlayback()) this.sendHeldFrame();
  };
  /** This call's tick handler (its identity is its subscription on the media clock). */
  private readonly tickHandler = (ms: number, skipped: number): void => this.onTick(ms, skipped);
  /** Send-phase alignment (null: off, or a media clock without slots). */
  private readonly sendPhase: SendPhase | null;

  constructor(
    private readonly deps: CallDeps,
    readonly leg: CallLeg,
    info: Partial<CallInfo> = {},
  ) {
    this.info = {
      callId: info.callId ?? newUuid(),
      from: info.from ?? '',
      to: info.to ?? '',
      direction: info.direction ?? 'inbound',
    };
    this.startedAt = deps.clock.now();
    this.debugLog = new DebugLog(() => deps.clock.now(), deps.logger?.child({ callId: this.info.callId }));
    this.done = new Promise((r) => (this.resolveDone = r));
    this.frameSamples = samplesPerFrame(leg.codec.sampleRate);
    this.mix = new Int16Array(this.frameSamples);
    this.scratch = new Int16Array(this.frameSamples);
    this.silence = encodeCallAudio(leg.codec, new Int16Array(this.frameSamples)).slice();
    leg.attach({
      onFrame: (frame, ms, hr) => this.onCallerFrame(frame, ms, hr),
      onDtmf: (digit, ms) => {
        for (const s of this.streams.values()) s.pushDtmf(digit, ms);
      },
      onHangup: (cause) => this.hangup(cause, { fromLeg: true }),
    });
    const clock = deps.mediaClock;
    this.sendPhase =
      deps.config.stream.playoutAlignSendPhase && clock.shiftSlot && clock.phaseMs
        ? new SendPhase({ minLeadMs: deps.config.stream.playoutSendLeadMs })
        : null;
    // Calls start spread over the send slots (smaller bursts of work per tick; aligned calls
    // then move), or all send in slot 0, on the tick (`stream.sendSlots: 'tick'`).
    const spread = this.sendPhase !== null || deps.config.stream.sendSlots === 'spread';
    this.unsubscribeTick = clock.onTick(this.tickHandler, spread ? 'spread' : 0);
  }

  /**
   * The send slot this call's frames go out in (clock.ts TICK_SLOTS), its moves so far and the
   * lead it keeps after its app's audio, ms (call/send-phase.ts; 0 with alignment off).
   */
  get sendSlot(): { slot: number | undefined; moves: number; leadMs: number } {
    return {
      slot: this.deps.mediaClock.slotOf?.(this.tickHandler),
      moves: this.sendPhase?.moves ?? 0,
      leadMs: this.sendPhase?.leadMs() ?? 0,
    };
  }

  /** True once the call has ended. */
  get ended(): boolean {
    return this.endedAt !== null;
  }

  /** Subscribes to stream creation (records, metrics); called before the stream starts. */
  onStreamCreated(listener: (s: Stream) => void): void {
    this.streamListeners.push(listener);
  }

  /** Sets (or clears) the XML element audio mixed into the outbound track. */
  setOutboundSource(source: OutboundSource | null): void {
    this.source = source;
  }

  /** Streams that have not ended. */
  activeStreams(): Stream[] {
    return [...this.streams.values()].filter((s) => !s.ended);
  }

  /**
   * Starts a stream on this call (`<Stream>`, REST start, CLI). A URL equal to an active stream's
   * is rejected (§1.2), as is any `rejection` from attribute validation: the stream then exists as
   * `dropped` with the cause in its debug log.
   * @throws CallstreamError-free: problems become a dropped stream, never an exception
   */
  startStream(params: StreamParams, rejection: string | null = null): Stream {
    let why = rejection;
    if (!why && this.activeStreams().some((s) => s.params.serviceUrl === params.serviceUrl)) {
      why = 'Invalid stream parameters: an active stream already exists for this URL';
    }
    if (!why && this.ended) why = 'Invalid stream parameters: the call has ended';
    const stream = new Stream(
      {
        clock: this.deps.clock,
        config: this.deps.config,
        userAgent: this.deps.userAgent,
        ...(this.deps.logger ? { logger: this.deps.logger } : {}),
        ...(this.deps.latency ? { latency: this.deps.latency } : {}),
        ...(this.deps.catchUpBudget ? { catchUpBudget: this.deps.catchUpBudget } : {}),
        preempt: this.preempt,
        onPlayback: this.onPlayback,
      },
      { callId: this.info.callId, from: this.info.from, to: this.info.to, codec: this.leg.codec },
      params,
      { streamId: newUuid(), rejection: why },
    );
    this.streams.set(stream.streamId, stream);
    attachStatusCallbacks(stream, this.deps.callbacks, this.deps.config);
    for (const l of this.streamListeners) l(stream);
    stream.start();
    return stream;
  }

  private onCallerFrame(frame: Uint8Array, captureMs: number, arrivalHr = -1): void {
    if (this.ended) return;
    this.stats.framesIn++;
    for (const s of this.streams.values()) s.pushInbound(frame, undefined, captureMs, arrivalHr);
  }

  /**
   * One media-clock tick: mix playback, send one frame to the caller, feed outbound tracks.
   * `skipped` ticks given up before this one (a stall) delayed every queued playback.
   *
   * Grace window: when a stream played audio on the last tick and its next frame has not arrived
   * (an app streaming at real-time pace whose message lands just after the tick), the frame is held
   * — at most until the tick's due time + the clock's grace (4 ms) — and sent the moment the audio
   * arrives, instead of sending silence now and the audio one tick (20 ms) late behind the next
   * frame. The packet interval stays within 20 ± 5 ms (protocol.md §3.6).
   */
  private onTick(tickMs: number, skipped = 0): void {
    if (this.ended) return;
    this.sendHeld(); // (only if the clock ran the next tick before the previous one's deadline)
    if (this.sendPhase) {
      const slot = this.deps.mediaClock.slotOf!(this.tickHandler);
      const step = slot === undefined ? 0 : this.sendPhase.onTick(slot);
      if (step !== 0 && this.deps.mediaClock.shiftSlot!(this.tickHandler, step)) {
        this.sendPhase.moved();
        this.debugLog.add(
          'info',
          'send_phase',
          `RTP send slot ${slot} → ${mod(slot! + step, TICK_SLOTS)} (app audio arrives ${this.sendPhase.estimate()!.phaseMs.toFixed(1)} ms into the tick)`,
        );
      }
    }
    if (skipped > 0) for (const s of this.streams.values()) s.playoutSkipped(skipped);
    if (this.waitingForPlayback() && this.deps.mediaClock.deferTick?.(this.sendHeld)) {
      this.heldTickMs = tickMs;
      return;
    }
    this.sendTick(tickMs);
  }

  /** Sends the frame held in the grace window, if any (`true`: there was one). */
  private sendHeldFrame(): boolean {
    if (this.heldTickMs === null || this.ended) return false;
    const tickMs = this.heldTickMs;
    this.heldTickMs = null;
    this.sendTick(tickMs);
    return true;
  }

  /** True if a bidirectional stream played audio last tick and its next frame is still missing. */
  private waitingForPlayback(): boolean {
    for (const s of this.streams.values()) if (s.playoutWaiting) return true;
    return false;
  }

  /** Mixes playback, sends one frame to the caller, feeds outbound tracks (the tick's work). */
  private sendTick(tickMs: number): void {
    const mix = this.mix;
    mix.fill(0);
    let sources = 0;
    if (this.source) {
      if (this.source.pull(mix)) sources++;
    }
    const pulled = this.pulled;
    pulled.length = 0;
    for (const s of this.streams.values()) {
      if (s.ended || !s.params.bidirectional) continue;
      const target = sources === 0 ? mix : this.scratch;
      if (target !== mix) target.fill(0);
      const r = s.pullPlayout(target, tickMs);
      if (!r) continue;
      pulled.push([s, r]);
      for (const d of r.dtmf) this.leg.sendDtmf(d, this.deps.config.dtmf.toneMs);
      if (r.audioSamples > 0) {
        if (target !== mix) {
          for (let i = 0; i < mix.length; i++) {
            const v = mix[i]! + target[i]!;
            mix[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
          }
        }
        sources++;
      }
    }
    const encoded = sources > 0 ? encodeCallAudio(this.leg.codec, mix) : this.silence;
    this.leg.sendFrame(encoded, { hasPlayback: sources > 0 });
    this.stats.framesOut++;
    if (sources > 0) this.stats.playbackFrames++;
    for (const [s, r] of pulled) s.playoutSent(r);
    pulled.length = 0;
    for (const s of this.streams.values()) {
      if (s.ended) continue;
      s.pushOutbound(encoded, sources > 0 ? mix : undefined, tickMs);
      s.onTick();
    }
  }

  /**
   * Ends the call: every active stream stops with `call_hangup`, the tick stops, the leg hangs up.
   * Idempotent.
   */
  hangup(cause = 'NORMAL_CLEARING', options: { fromLeg?: boolean; shutdown?: boolean } = {}): void {
    if (this.ended) return;
    this.endedAt = this.deps.clock.now();
    for (const s of this.streams.values()) s.stop('call_hangup', { shutdown: options.shutdown ?? false });
    this.unsubscribeTick?.();
    this.unsubscribeTick = null;
    this.heldTickMs = null;
    this.source = null;
    if (!options.fromLeg) this.leg.hangup(cause);
    this.resolveDone(cause);
  }
}
