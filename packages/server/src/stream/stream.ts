/**
 * The stream engine: one {@link Stream} per fork of a call's audio to one WebSocket URL
 * (protocol.md §3). It dials the app (callstream is the WebSocket client), sends `start`, forwards
 * call audio as `media` on arrival, plays the app's audio back through a {@link PlayoutQueue}
 * drained by the call's media-clock tick, acknowledges checkpoints, applies `clearAudio`, queues
 * `sendDTMF`, re-dials dropped connections, watches for a slow consumer and ends with exactly one
 * terminal domain event.
 *
 * Queues and their policies:
 * - outbound backlog (to the app): two FIFOs, control (`start`, `dtmf`, acks, `stop`) before media;
 *   the socket's own buffer is kept ≤ `socketBufferBytes`; fill = age of the oldest unsent message ÷
 *   `backlogMs`; 30/60/90 % → `degraded`, 100 % → backlog discarded, stream ends `buffer_overflow`.
 * - playout queue (to the caller): 40 s cap, overflow rejected and logged (`playback_overflow`).
 */
import WebSocket from 'ws';
import type { Logger } from 'pino';
import type { EngineLatency } from '../metrics/latency.js';
import {
  SIGNATURE_HEADERS,
  encodeClearedBody,
  encodeDtmfBody,
  encodeMediaBody,
  encodePlayedBody,
  encodeStartBody,
  encodeStopBody,
  decodeAppMessage,
  extraHeadersAsHttp,
  mediaFormatOf,
  newNonce,
  signUpgrade,
  streamTemplate,
  tracksOf,
  withSequence,
  type AppMessage,
  type MessageBody,
  type StopReason,
  type StreamParams,
  type StreamTemplate,
  type Track,
} from '@callstream/protocol';
import type { Clock, TimerHandle } from '../clock/clock.js';
import type { Config } from '../config/config.js';
import {
  PlaybackDecoder,
  PlaybackFormatError,
  StreamEncoder,
  decodeCallAudio,
  samplesPerFrame,
  type CallCodec,
} from '../media/codec.js';
import { NoiseSuppressor } from '../media/noise-suppression.js';
import {
  PlayoutQueue,
  catchUpFor,
  type CatchUpBudget,
  type ForgoneReason,
  type PullResult,
} from '../media/playout.js';
import { DebugLog } from './debug-log.js';

/** Record status of a stream (protocol.md §2.3). */
export type StreamStatus = 'initiated' | 'in-progress' | 'stopped' | 'dropped';

/** What a stream knows of its call. */
export interface StreamCallInfo {
  callId: string;
  from: string;
  to: string;
  /** The call leg's codec: playback is converted to it. */
  codec: CallCodec;
}

/** Domain events of a stream (design.md): the store, callbacks and metrics subscribe to them. */
export type StreamEvent =
  | { type: 'connected'; at: number; reconnect: boolean }
  | { type: 'started'; at: number }
  | { type: 'degraded'; at: number; level: 30 | 60 | 90 }
  | { type: 'played'; at: number; name: string }
  | { type: 'cleared'; at: number }
  | { type: 'ended'; at: number; reason: StopReason; status: 'stopped' | 'dropped'; error: string };

/** Dependencies of a stream, injected by the call (and by tests). */
export interface StreamDeps {
  clock: Clock;
  config: Config;
  userAgent: string;
  logger?: Logger;
  /** Latency histograms (capture→WS, playAudio→RTP). */
  latency?: EngineLatency;
  /** Called before each app message is handled: the media clock's preemption point. */
  preempt?: () => void;
  /**
   * Called after each app message is handled: the call sends a frame it held for this stream's
   * playback ({@link Stream.playoutWaiting}) as soon as the audio is there. `live`: the message
   * was a `playAudio` that plays at the next send (the queue held less than a frame) — its arrival
   * time tells the call's send phase (call/send-phase.ts).
   */
  onPlayback?: (live: boolean) => void;
  /** The process-wide catch-up budget per media-clock tick (none: unbounded). */
  catchUpBudget?: CatchUpBudget;
}

/** Per-stream counters (debug log summary, CLI summary, metrics). */
export interface StreamStats {
  /** Messages written to the app, by event name. */
  sent: Record<string, number>;
  /** Messages received from the app, by event name (`invalid` for rejected ones). */
  received: Record<string, number>;
  connectAttempts: number;
  reconnects: number;
  checkpointsAcked: number;
  clears: number;
  /** Frames of media discarded (backlog overflow). */
  mediaDropped: number;
  /** Milliseconds of playAudio rejected because the playout queue was full. */
  playbackDroppedMs: number;
}

/** DroppedStream `Error` texts (protocol.md §4.2). */
export const DROP_ERRORS = {
  connect_failed: 'Could not establish connection with the remote service',
  connection_lost: 'Connection disconnected with the remote service',
  buffer_overflow: 'Connection disconnected with the remote service',
} as const;

interface Pending {
  body: MessageBody;
  at: number;
  kind: string;
  /** High-resolution arrival of the caller's packet (media only), for capture→WS latency. */
  hr: number;
}

/** A FIFO of pending messages with O(1) amortised shift. */
class Fifo {
  private items: Pending[] = [];
  private head = 0;
  push(p: Pending): void {
    this.items.push(p);
  }
  peek(): Pending | undefined {
    return this.items[this.head];
  }
  shift(): Pending | undefined {
    const p = this.items[this.head];
    if (p === undefined) return undefined;
    this.items[this.head++] = undefined as unknown as Pending;
    if (this.head > 512 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }
  get length(): number {
    return this.items.length - this.head;
  }
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    return n;
  }
}

const DTMF_DIGIT = /^[0-9*#A-Da-d]$/;

/** One fork of a call's audio to one WebSocket URL. */
export class Stream {
  readonly streamId: string;
  readonly params: StreamParams;
  readonly debugLog: DebugLog;
  readonly stats: StreamStats = {
    sent: {},
    received: {},
    connectAttempts: 0,
    reconnects: 0,
    checkpointsAcked: 0,
    clears: 0,
    mediaDropped: 0,
    playbackDroppedMs: 0,
  };
  /** Creation time, epoch ms. */
  readonly createdAt: number;
  /** First `media` written (StartStream; billing start), epoch ms. */
  firstMediaAt: number | null = null;
  /** Last `media` written, epoch ms. */
  lastMediaAt: number | null = null;
  /** Stream end, epoch ms. */
  endedAt: number | null = null;
  /** Why it ended. */
  endReason: StopReason | null = null;
  /** Resolves when the stream has ended, with the reason (for `keepCallAlive`). */
  readonly done: Promise<StopReason>;

  private statusValue: StreamStatus = 'initiated';
  private readonly tracks: Track[];
  private readonly sendsInbound: boolean;
  private readonly sendsOutbound: boolean;
  private readonly template: StreamTemplate;
  private readonly inboundEncoder: StreamEncoder | null;
  private readonly outboundEncoder: StreamEncoder | null;
  private readonly playback: PlaybackDecoder | null;
  /** Noise suppression of the inbound track (`noiseCancellation`), or null. */
  private readonly noise: NoiseSuppressor | null;
  private readonly playout: PlayoutQueue | null;
  private readonly listeners: Array<(e: StreamEvent) => void> = [];
  private readonly control = new Fifo();
  private readonly media = new Fifo();
  private ws: WebSocket | null = null;
  private socketReady = false;
  private everStarted = false;
  private seq = 0;
  private chunk = { inbound: 0, outbound: 0 };
  private redialsUsed = 0;
  private openedAt = 0;
  private lastReceivedAt = 0;
  /** High-resolution time the message being handled arrived (playAudio→RTP latency). */
  private messageHr = 0;
  /** The message being handled was a live `playAudio` (see {@link StreamDeps.onPlayback}). */
  private liveArrival = false;
  /** Samples per 20 ms frame at the call's rate. */
  private readonly frameSamples: number;
  private armed = { 30: true, 60: true, 90: true };
  private timers = new Set<TimerHandle>();
  private timeoutTimer: TimerHandle | undefined;
  private resolveDone!: (r: StopReason) => void;
  /** Set for a rejected stream: why (the DroppedStream `Error`). */
  private pendingRejection: string | null = null;
  private readonly cfg: Config['stream'];

  /**
   * @param rejection if set, the stream is rejected (§1.2 "Reject"): no connection, status
   *   `dropped`, reason `invalid_parameters`, the text as `Error`
   */
  constructor(
    private readonly deps: StreamDeps,
    readonly call: StreamCallInfo,
    params: StreamParams,
    options: { streamId: string; rejection?: string | null },
  ) {
    this.streamId = options.streamId;
    this.params = params;
    this.cfg = deps.config.stream;
    this.createdAt = deps.clock.now();
    this.debugLog = new DebugLog(
      () => deps.clock.now(),
      deps.logger?.child({ streamId: this.streamId, callId: call.callId }),
    );
    this.done = new Promise((r) => (this.resolveDone = r));
    this.tracks = tracksOf(params.audioTrack);
    this.sendsInbound = this.tracks.includes('inbound');
    this.sendsOutbound = this.tracks.includes('outbound');
    this.template = streamTemplate(this.streamId, params.extraHeaders.json);
    const rejected = options.rejection != null;
    this.inboundEncoder =
      this.sendsInbound && !rejected ? new StreamEncoder(call.codec, params.contentType) : null;
    this.outboundEncoder =
      this.sendsOutbound && !rejected ? new StreamEncoder(call.codec, params.contentType) : null;
    this.noise =
      params.noiseCancellation && this.sendsInbound && !rejected
        ? new NoiseSuppressor(call.codec.sampleRate, params.noiseCancellationLevel)
        : null;
    if (this.noise) {
      const st = this.noise.strength;
      this.debugLog.add(
        'info',
        'noise_cancellation',
        `noise cancellation on, level ${params.noiseCancellationLevel} (wet ${(st.wet * 100).toFixed(1)} %, residual exponent ${st.residualExponent.toFixed(2)}, ` +
          `floor ${st.floorDb.toFixed(0)} dB, ` +
          `VAD threshold ${st.vadThreshold.toFixed(2)}); adds ${this.noise.latencyMs} ms`,
      );
    }
    this.frameSamples = samplesPerFrame(call.codec.sampleRate);
    if (params.bidirectional && !rejected) {
      this.playback = new PlaybackDecoder(call.codec.sampleRate, params.contentType);
      const latency = deps.latency;
      this.playout = new PlayoutQueue({
        frameSamples: samplesPerFrame(call.codec.sampleRate),
        capSamples: (this.cfg.playbackCapMs * call.codec.sampleRate) / 1000,
        ...(latency ? { onFirstPull: (t: number) => latency.playToRtp.record(latency.now() - t) } : {}),
        ...(this.cfg.playoutCatchUpMs > 0
          ? { catchUp: catchUpFor(call.codec.sampleRate, this.cfg.playoutCatchUpMs) }
          : {}),
      });
    } else {
      this.playback = null;
      this.playout = null;
    }
    if (rejected) this.pendingRejection = options.rejection!;
  }

  /** Current record status. */
  get status(): StreamStatus {
    return this.statusValue;
  }

  /** True once the stream has ended. */
  get ended(): boolean {
    return this.endedAt !== null;
  }

  /** Late playAudio recovered by playout catch-up so far, ms (media/playout.ts). */
  get playoutCatchUpMs(): number {
    return this.playout ? (this.playout.acceleratedSamples * 1000) / this.call.codec.sampleRate : 0;
  }

  /** Silence played inside the app's talk sessions because its audio came late, ms (media/playout.ts). */
  get playoutDrySpellMs(): number {
    return this.playout ? (this.playout.drySpellSamples * 1000) / this.call.codec.sampleRate : 0;
  }

  /**
   * Playout lateness given up without being recovered so far, ms by reason (media/playout.ts
   * `ForgoneReason`; empty for one-way streams). A new object per call (metrics scrapes).
   */
  get playoutForgoneMs(): Partial<Record<ForgoneReason, number>> {
    const out: Partial<Record<ForgoneReason, number>> = {};
    if (!this.playout) return out;
    const rate = this.call.codec.sampleRate;
    for (const [k, v] of Object.entries(this.playout.forgoneSamples))
      out[k as ForgoneReason] = (v * 1000) / rate;
    return out;
  }

  /**
   * Playout lateness still to recover, ms (media/playout.ts: late audio the queue holds that catch-up
   * will remove; 0 for one-way streams). Queued audio beyond it is audio the app sent ahead — or
   * delay no rule has credited.
   */
  get playoutLatenessMs(): number {
    return this.playout ? (this.playout.latenessSamples * 1000) / this.call.codec.sampleRate : 0;
  }

  /** Queued playback, ms (0 for one-way streams). */
  get playoutQueuedMs(): number {
    return this.playout ? (this.playout.queuedSamples * 1000) / this.call.codec.sampleRate : 0;
  }

  /** Subscribes to domain events. */
  onEvent(listener: (e: StreamEvent) => void): void {
    this.listeners.push(listener);
  }

  private emit(e: StreamEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.deps.logger?.error({ err, streamId: this.streamId }, 'stream event listener failed');
      }
    }
  }

  /** Starts connecting (asynchronously). A rejected stream ends at once. */
  start(): void {
    if (this.pendingRejection !== null) {
      const text = this.pendingRejection;
      this.debugLog.add('error', 'invalid_parameters', text);
      this.end('invalid_parameters', text);
      return;
    }
    this.dial(0, false);
  }

  // -------------------------------------------------------------------------------------------
  // connection

  private later(ms: number, fn: () => void): TimerHandle {
    const t = this.deps.clock.setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  private upgradeHeaders(): Record<string, string> {
    const nonce = newNonce();
    const signature = signUpgrade(this.params.serviceUrl, nonce, this.deps.config.authToken);
    const headers: Record<string, string> = {
      'User-Agent': this.deps.userAgent,
      [SIGNATURE_HEADERS.signature]: signature,
      [SIGNATURE_HEADERS.mainAccountSignature]: signature,
      [SIGNATURE_HEADERS.nonce]: nonce,
    };
    return this.cfg.extraHeadersAsHttpHeaders
      ? { ...extraHeadersAsHttp(this.params.extraHeaders), ...headers }
      : headers;
  }

  /**
   * One connect attempt. `failures` counts failed attempts of this episode; `redial` says whether
   * this is a re-dial of an established stream.
   */
  private dial(failures: number, redial: boolean): void {
    if (this.ended) return;
    this.stats.connectAttempts++;
    this.debugLog.add(
      'info',
      'connect_attempt',
      `${redial ? 're-dial' : 'attempt'} ${failures + 1} to ${this.params.serviceUrl}`,
    );
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.params.serviceUrl, {
        headers: this.upgradeHeaders(),
        perMessageDeflate: false,
        followRedirects: false,
        maxPayload: this.cfg.maxMessageBytes,
      });
    } catch (e) {
      this.attemptFailed(failures, redial, (e as Error).message);
      return;
    }
    this.ws = ws;
    let opened = false;
    let cause = 'connection closed';
    const timer = this.later(this.cfg.connectTimeoutMs, () => {
      cause = `no upgrade within ${this.cfg.connectTimeoutMs} ms`;
      ws.terminate();
    });
    ws.on('error', (e: Error & { code?: string }) => {
      cause = e.message || e.code || 'error';
      if (opened && e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.countReceived('invalid');
        this.debugLog.add(
          'warning',
          'invalid_message',
          `message larger than ${this.cfg.maxMessageBytes} bytes: connection closed (1009)`,
        );
      }
    });
    ws.once('open', () => {
      opened = true;
      this.clearTimer(timer);
      if (this.ended) {
        ws.close(1000);
        return;
      }
      this.onOpen(ws, redial);
    });
    ws.on('message', (data, isBinary) => {
      this.deps.preempt?.();
      try {
        this.liveArrival = false;
        this.onMessage(data as Buffer, isBinary);
        this.deps.onPlayback?.(this.liveArrival);
      } catch (e) {
        // Last line of defence: whatever the app sent, it must not take the process down.
        this.countReceived('invalid');
        this.debugLog.add(
          'error',
          'invalid_message',
          `message could not be handled: ${(e as Error).message}`,
        );
      }
    });
    ws.on('pong', () => (this.lastReceivedAt = this.deps.clock.now()));
    ws.once('close', (code: number, reason: Buffer) => {
      this.clearTimer(timer);
      if (this.ws === ws) {
        this.ws = null;
        this.socketReady = false;
      }
      if (this.ended) return;
      if (!opened) this.attemptFailed(failures, redial, cause);
      else this.onEstablishedClose(code, reason.toString('utf8').slice(0, 120));
    });
  }

  private clearTimer(t: TimerHandle | undefined): void {
    if (t === undefined) return;
    this.deps.clock.clearTimeout(t);
    this.timers.delete(t);
  }

  private attemptFailed(failures: number, redial: boolean, cause: string): void {
    this.debugLog.add('warning', 'connect_failed', `attempt ${failures + 1} failed: ${cause}`);
    const delays = this.cfg.retryDelaysMs;
    if (redial) {
      if (this.redialsUsed < this.cfg.redials) {
        const delay = delays[Math.min(this.redialsUsed, delays.length - 1)] ?? 0;
        this.redialsUsed++;
        this.debugLog.add(
          'warning',
          'reconnecting',
          `re-dial ${this.redialsUsed} of ${this.cfg.redials} in ${delay} ms`,
        );
        this.later(delay, () => this.dial(failures + 1, true));
      } else {
        this.end('connection_lost', DROP_ERRORS.connection_lost);
      }
      return;
    }
    if (failures < delays.length) {
      this.later(delays[failures]!, () => this.dial(failures + 1, false));
    } else {
      this.end('connect_failed', DROP_ERRORS.connect_failed);
    }
  }

  private onOpen(ws: WebSocket, redial: boolean): void {
    const now = this.deps.clock.now();
    this.openedAt = now;
    this.lastReceivedAt = now;
    this.socketReady = true;
    if (redial) {
      this.stats.reconnects++;
      this.debugLog.add('info', 'reconnected', `re-connected to ${this.params.serviceUrl}`);
    } else {
      this.debugLog.add('info', 'connected', `connected to ${this.params.serviceUrl}`);
    }
    const fmt = mediaFormatOf(this.params.contentType);
    // `start` is the first message on every socket (§3.3): written directly, ahead of the backlog.
    this.write(
      ws,
      encodeStartBody({
        callId: this.call.callId,
        streamId: this.streamId,
        accountId: this.deps.config.accountId ?? this.deps.config.authId,
        tracks: this.tracks,
        encoding: fmt.encoding,
        sampleRate: fmt.sampleRate,
        extraHeadersJson: this.params.extraHeaders.json,
      }),
      'start',
    );
    this.everStarted = true;
    if (this.statusValue === 'initiated') this.statusValue = 'in-progress';
    this.emit({ type: 'connected', at: now, reconnect: redial });
    this.schedulePing(ws);
    this.flush();
  }

  private schedulePing(ws: WebSocket): void {
    this.later(this.cfg.pingIntervalMs, () => {
      if (this.ws !== ws || this.ended) return;
      const sentAt = this.deps.clock.now();
      try {
        ws.ping();
      } catch {
        /* closing; the close handler decides */
      }
      this.later(this.cfg.pingTimeoutMs, () => {
        if (this.ws !== ws || this.ended) return;
        if (this.lastReceivedAt < sentAt) {
          this.debugLog.add(
            'warning',
            'connection_lost',
            `nothing received within ${this.cfg.pingTimeoutMs} ms of a ping`,
          );
          ws.terminate();
        }
      });
      this.schedulePing(ws);
    });
  }

  private onEstablishedClose(code: number, reason: string): void {
    if (code === 1000 || code === 1001 || code === 1005) {
      this.debugLog.add(
        'info',
        'remote_closed',
        `app closed the connection (${code}${reason ? ` ${reason}` : ''})`,
      );
      this.end('remote_closed', '');
      return;
    }
    const now = this.deps.clock.now();
    if (now - this.openedAt >= this.cfg.redialResetMs) this.redialsUsed = 0;
    this.debugLog.add(
      'warning',
      'connection_lost',
      `connection lost (close code ${code}${reason ? ` ${reason}` : ''})`,
    );
    this.attemptFailed(-1, true, `connection lost (${code})`);
  }

  // -------------------------------------------------------------------------------------------
  // writing to the app

  private write(ws: WebSocket, body: MessageBody, kind: string): void {
    ws.send(withSequence(this.seq++, body));
    this.stats.sent[kind] = (this.stats.sent[kind] ?? 0) + 1;
  }

  private enqueue(fifo: Fifo, body: MessageBody, kind: string, hr = -1): void {
    fifo.push({ body, at: this.deps.clock.now(), kind, hr });
    this.flush();
  }

  /** Writes pending messages while the socket's buffer is under its bound; control first. */
  private flush(force = false): void {
    const ws = this.ws;
    if (ws && this.socketReady && ws.readyState === WebSocket.OPEN) {
      while (force || ws.bufferedAmount <= this.cfg.socketBufferBytes) {
        const p = this.control.shift() ?? this.media.shift();
        if (!p) break;
        this.write(ws, p.body, p.kind);
        if (p.kind === 'media') {
          if (p.hr >= 0 && this.deps.latency)
            this.deps.latency.captureToWs.record(this.deps.latency.now() - p.hr);
          this.mediaWritten();
        }
      }
    }
    if (!force) this.checkBacklog();
  }

  private mediaWritten(): void {
    const now = this.deps.clock.now();
    this.lastMediaAt = now;
    if (this.firstMediaAt === null) {
      this.firstMediaAt = now;
      this.emit({ type: 'started', at: now });
      this.timeoutTimer = this.later(this.params.streamTimeout * 1000, () => {
        this.debugLog.add(
          'info',
          'stream_timeout',
          `streamTimeout of ${this.params.streamTimeout} s reached`,
        );
        this.stop('stream_timeout');
      });
    }
  }

  private checkBacklog(): void {
    if (this.ended) return;
    const oldest = Math.min(this.control.peek()?.at ?? Infinity, this.media.peek()?.at ?? Infinity);
    const fill = oldest === Infinity ? 0 : (this.deps.clock.now() - oldest) / this.cfg.backlogMs;
    if (fill < 0.1) {
      // Re-arm without allocating: this runs for every frame written.
      this.armed[30] = this.armed[60] = this.armed[90] = true;
      return;
    }
    if (fill >= 1) {
      const dropped = this.media.clear() + this.control.clear();
      this.stats.mediaDropped += dropped;
      this.debugLog.add(
        'error',
        'buffer_overflow',
        `backlog reached ${this.cfg.backlogMs} ms: ${dropped} messages discarded, stream dropped`,
      );
      this.end('buffer_overflow', DROP_ERRORS.buffer_overflow);
      return;
    }
    for (const level of [30, 60, 90] as const) {
      if (fill >= level / 100 && this.armed[level]) {
        this.armed[level] = false;
        this.debugLog.add(
          'warning',
          'buffer_degraded',
          `backlog at ${level} % (${Math.round(fill * this.cfg.backlogMs)} ms unsent)`,
        );
        this.emit({ type: 'degraded', at: this.deps.clock.now(), level });
      }
    }
  }

  /**
   * One caller frame (inbound track), on arrival.
   * @param encoded 20 ms in the call codec
   * @param pcm the same frame decoded, if available
   * @param captureMs epoch ms of arrival
   */
  pushInbound(encoded: Uint8Array, pcm: Int16Array | undefined, captureMs: number, arrivalHr = -1): void {
    if (!this.inboundEncoder || !this.everStarted || this.ended) return;
    const bytes = this.noise
      ? this.inboundEncoder.encodePcm(this.noise.process(pcm ?? decodeCallAudio(this.call.codec, encoded)))
      : this.inboundEncoder.encode(encoded, pcm);
    this.pushMedia('inbound', bytes, captureMs, arrivalHr);
  }

  /** One frame sent to the caller (outbound track), at sending time. */
  pushOutbound(encoded: Uint8Array, pcm: Int16Array | undefined, sentMs: number): void {
    if (!this.outboundEncoder || !this.everStarted || this.ended) return;
    this.pushMedia('outbound', this.outboundEncoder.encode(encoded, pcm), sentMs);
  }

  private pushMedia(track: Track, bytes: Uint8Array, ms: number, hr = -1): void {
    const chunk = ++this.chunk[track];
    const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    this.enqueue(this.media, encodeMediaBody(this.template, track, ms, chunk, b64), 'media', hr);
  }

  /** A caller DTMF key press (RFC 4733 event start), epoch ms. */
  pushDtmf(digit: string, startMs: number): void {
    if (!this.sendsInbound || !this.everStarted || this.ended) return;
    this.enqueue(this.control, encodeDtmfBody(this.template, digit, startMs), 'dtmf');
  }

  /** Called by the call on every media-clock tick: writes what the socket drained, checks the backlog. */
  onTick(): void {
    if (!this.ended) this.flush();
  }

  // -------------------------------------------------------------------------------------------
  // messages from the app

  private countReceived(kind: string): void {
    this.stats.received[kind] = (this.stats.received[kind] ?? 0) + 1;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.lastReceivedAt = this.deps.clock.now();
    this.messageHr = this.deps.latency ? this.deps.latency.now() : 0;
    if (this.ended) return;
    if (isBinary) {
      this.countReceived('invalid');
      this.debugLog.add(
        'warning',
        'invalid_message',
        `binary frame of ${data.length} bytes ignored (text JSON expected)`,
      );
      return;
    }
    const r = decodeAppMessage(data.toString('utf8'));
    if (!r.ok) {
      this.countReceived('invalid');
      this.debugLog.add('warning', 'invalid_message', `message ignored: ${r.reason}`);
      return;
    }
    this.countReceived(r.message.event);
    if (!this.playout || !this.playback) {
      this.debugLog.add(
        'warning',
        'not_bidirectional',
        `${r.message.event} ignored: the stream is not bidirectional`,
      );
      return;
    }
    this.handle(r.message, this.playout, this.playback);
  }

  private handle(m: AppMessage, queue: PlayoutQueue, decoder: PlaybackDecoder): void {
    const rate = this.call.codec.sampleRate;
    switch (m.event) {
      case 'playAudio': {
        let decoded;
        try {
          decoded = decoder.decode(m);
        } catch (e) {
          this.countReceived('invalid');
          const text =
            e instanceof PlaybackFormatError
              ? e.message
              : `playAudio could not be decoded: ${(e as Error).message}`;
          this.debugLog.add('warning', 'invalid_message', text);
          return;
        }
        for (const w of decoded.warnings) this.debugLog.add('warning', 'invalid_message', `playAudio: ${w}`);
        this.liveArrival = queue.queuedSamples < this.frameSamples && decoded.samples.length > 0;
        this.enqueuePlayback(queue, decoded.samples, this.messageHr);
        return;
      }
      case 'checkpoint': {
        this.enqueuePlayback(queue, decoder.flush());
        if (queue.enqueueCheckpoint(m.name)) this.acknowledge(m.name);
        return;
      }
      case 'clearAudio': {
        const { droppedSamples, droppedCheckpoints } = queue.clear();
        decoder.reset();
        this.stats.clears++;
        this.debugLog.add(
          'info',
          'audio_cleared',
          `clearAudio: ${Math.round((droppedSamples * 1000) / rate)} ms of audio and ${droppedCheckpoints.length} checkpoint(s) discarded`,
        );
        this.enqueue(this.control, encodeClearedBody(this.streamId), 'clearedAudio');
        this.emit({ type: 'cleared', at: this.deps.clock.now() });
        return;
      }
      case 'sendDTMF': {
        const dtmf = this.deps.config.dtmf;
        const invalid: string[] = [];
        for (const c of m.dtmf) {
          if (DTMF_DIGIT.test(c))
            queue.enqueueDtmf(c.toUpperCase(), ((dtmf.toneMs + dtmf.gapMs) * rate) / 1000);
          else invalid.push(c);
        }
        if (invalid.length) {
          this.debugLog.add(
            'warning',
            'dtmf_invalid_char',
            `sendDTMF: dropped invalid character(s) ${JSON.stringify(invalid.join(''))}`,
          );
        }
        return;
      }
    }
  }

  private enqueuePlayback(queue: PlayoutQueue, samples: Int16Array, receivedHr = 0): void {
    if (samples.length === 0) return;
    const { dropped } = queue.enqueueAudio(samples, receivedHr);
    if (dropped > 0) {
      const ms = Math.round((dropped * 1000) / this.call.codec.sampleRate);
      this.stats.playbackDroppedMs += ms;
      this.debugLog.add(
        'warning',
        'playback_overflow',
        `${ms} ms of playAudio dropped: playback queue full (${this.cfg.playbackCapMs} ms)`,
      );
    }
  }

  private acknowledge(name: string): void {
    this.stats.checkpointsAcked++;
    this.debugLog.add('info', 'checkpoint_played', `checkpoint "${name}" played`);
    this.enqueue(
      this.control,
      encodePlayedBody(this.streamId, name, this.cfg.checkpointAckEvent),
      this.cfg.checkpointAckEvent,
    );
    this.emit({ type: 'played', at: this.deps.clock.now(), name });
  }

  // -------------------------------------------------------------------------------------------
  // playout (driven by the call's tick)

  /**
   * Takes this stream's next 20 ms of playback into `frame` (zero-filled by the caller).
   * @returns what was taken, or `null` for one-way or ended streams
   */
  pullPlayout(frame: Int16Array, tickMs: number): PullResult | null {
    if (!this.playout || this.ended) return null;
    this.playoutTickMs = tickMs;
    return this.playout.pull(frame, this.deps.catchUpBudget ? this.mayAccelerate : undefined);
  }

  /** The tick being pulled, for {@link mayAccelerate}. */
  private playoutTickMs = 0;
  /** Asks the shared catch-up budget (bound once: 50 pulls per second). */
  private readonly mayAccelerate = (): boolean => this.deps.catchUpBudget!.take(this.playoutTickMs);

  /**
   * True when this stream played audio on the last tick and its next frame has not arrived yet:
   * the call may hold the tick's frame for it, within the media clock's grace window.
   */
  get playoutWaiting(): boolean {
    return this.playout !== null && !this.ended && this.playout.waiting;
  }

  /** The media clock gave up `ticks` ticks (a stall): queued playback was delayed by them. */
  playoutSkipped(ticks: number): void {
    if (this.playout && !this.ended) this.playout.skipped(ticks);
  }

  /** The frame holding `pulled` has been sent to the caller: acknowledge its checkpoints. */
  playoutSent(pulled: PullResult): void {
    if (this.ended) return;
    for (const name of pulled.checkpoints) this.acknowledge(name);
  }

  // -------------------------------------------------------------------------------------------
  // ending

  /**
   * Stops the stream: sends `stop` (if configured and a socket is open), closes with 1000 (1001
   * on server shutdown). Idempotent.
   */
  stop(reason: 'api_request' | 'stream_timeout' | 'call_hangup', options: { shutdown?: boolean } = {}): void {
    this.end(reason, '', options.shutdown ? 1001 : 1000);
  }

  private end(reason: StopReason, error: string, closeCode = 1000): void {
    if (this.ended) return;
    const now = this.deps.clock.now();
    this.endedAt = now;
    this.endReason = reason;
    const dropped =
      reason === 'connect_failed' ||
      reason === 'connection_lost' ||
      reason === 'buffer_overflow' ||
      reason === 'invalid_parameters';
    this.statusValue = dropped ? 'dropped' : 'stopped';
    for (const t of this.timers) this.deps.clock.clearTimeout(t);
    this.timers.clear();
    const ws = this.ws;
    if (ws && this.socketReady && ws.readyState === WebSocket.OPEN) {
      if (reason !== 'buffer_overflow') this.flush(true);
      const sendsStop =
        reason === 'api_request' ||
        reason === 'stream_timeout' ||
        reason === 'call_hangup' ||
        reason === 'buffer_overflow';
      if (sendsStop && this.cfg.sendStopEvent) {
        this.write(ws, encodeStopBody(this.call.callId, this.streamId, this.tracks, reason), 'stop');
      }
      ws.close(closeCode);
      // A clogged socket may never finish its closing handshake.
      const t = this.deps.clock.setTimeout(() => ws.terminate(), 2000);
      ws.once('close', () => this.deps.clock.clearTimeout(t));
    } else if (ws) {
      ws.terminate();
    }
    this.ws = null;
    this.socketReady = false;
    const unsent = this.media.clear() + this.control.clear();
    this.playout?.clear();
    this.playback?.close();
    this.inboundEncoder?.close();
    this.noise?.close();
    this.outboundEncoder?.close();
    this.debugLog.add(
      dropped ? 'error' : 'info',
      'stream_ended',
      `stream ${this.statusValue} (${reason}); sent ${JSON.stringify(this.stats.sent)}; received ${JSON.stringify(this.stats.received)}; ` +
        `checkpoints acked ${this.stats.checkpointsAcked}; clears ${this.stats.clears}; unsent ${unsent}`,
    );
    this.emit({ type: 'ended', at: now, reason, status: this.statusValue as 'stopped' | 'dropped', error });
    this.resolveDone(reason);
  }
}
