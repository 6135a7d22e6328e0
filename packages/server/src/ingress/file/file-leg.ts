/**
 * The simulated caller's leg: plays 8 kHz PCM as μ-law caller audio, one 20 ms frame per media
 * tick, then silence; records everything the call sends back (decoded), DTMF digits received, and
 * when the first playback arrived after the caller's audio ended.
 */
import type { MediaClock } from '../../clock/clock.js';
import type { CallLeg, CallLegSink, OutgoingFrameInfo } from '../../call/call-leg.js';
import { PCMU, type CallCodec } from '../../media/codec.js';
import { g711Decode, g711Encode, MULAW_SILENCE } from '../../media/g711.js';

/** 20 ms of μ-law silence, shared (consumers copy or encode at once; nobody writes to it). */
const SILENCE = new Uint8Array(160).fill(MULAW_SILENCE);

/** A DTMF digit the simulated caller received. */
export interface ReceivedDtmf {
  digit: string;
  /** Epoch ms (media clock). */
  atMs: number;
  durationMs: number;
}

/** The simulated caller. */
export class FileCallerLeg implements CallLeg {
  readonly codec: CallCodec = PCMU;
  /** Media-clock time of the caller's first and last audio frames, epoch ms. */
  firstFrameMs: number | null = null;
  callerAudioEndMs: number | null = null;
  /** First audible playback frame sent at or after the end of the caller's audio, epoch ms. */
  firstPlaybackAfterEndMs: number | null = null;
  /** Last audible playback frame, epoch ms (silence played back does not count). */
  lastPlaybackMs: number | null = null;
  readonly dtmfReceived: ReceivedDtmf[] = [];
  hungUp: string | null = null;
  private sink: CallLegSink | null = null;
  private readonly frames: Uint8Array;
  private position = 0;
  private readonly recorded: Uint8Array[] = [];
  private unsubscribe: (() => void) | null = null;
  private now = 0;
  private playing = false;

  /**
   * @param samples the caller's audio, 8 kHz mono
   * @param options.loop repeat the audio until the call ends (a simulated party that never stops)
   */
  constructor(
    private readonly mediaClock: MediaClock,
    samples: Int16Array,
    private readonly options: { loop?: boolean } = {},
  ) {
    const padded = new Int16Array(Math.ceil(samples.length / 160) * 160);
    padded.set(samples);
    this.frames = g711Encode('mulaw', padded);
  }

  /** Starts the caller's audio at the next tick (silence is sent until then). */
  play(): void {
    this.playing = true;
  }

  /** True once all of the caller's audio has been sent. */
  get callerAudioDone(): boolean {
    return this.position >= this.frames.length;
  }

  attach(sink: CallLegSink): void {
    this.sink = sink;
    this.unsubscribe = this.mediaClock.onTick((ms) => this.tick(ms));
  }

  private tick(ms: number): void {
    this.now = ms;
    if (!this.sink) return;
    let frame: Uint8Array;
    if (this.playing && this.position < this.frames.length) {
      frame = this.frames.subarray(this.position, this.position + 160);
      this.firstFrameMs ??= ms;
      this.position += 160;
      if (this.position >= this.frames.length) {
        if (this.options.loop) this.position = 0;
        else this.callerAudioEndMs = ms + 20;
      }
    } else {
      frame = SILENCE;
    }
    this.sink.onFrame(frame, ms);
  }

  /** Simulates a key press of the caller. */
  pressDigit(digit: string): void {
    this.sink?.onDtmf(digit, this.now);
  }

  /** Simulates the caller hanging up. */
  hangUpFromCaller(): void {
    this.stop('caller hung up');
    this.sink?.onHangup('NORMAL_CLEARING');
  }

  sendFrame(frame: Uint8Array, info: OutgoingFrameInfo): void {
    this.recorded.push(frame.slice());
    if (info.hasPlayback && isAudible(frame)) {
      this.lastPlaybackMs = this.now;
      if (
        this.callerAudioEndMs !== null &&
        this.firstPlaybackAfterEndMs === null &&
        this.now >= this.callerAudioEndMs
      ) {
        this.firstPlaybackAfterEndMs = this.now;
      }
    }
  }

  sendDtmf(digit: string, durationMs: number): void {
    this.dtmfReceived.push({ digit, atMs: this.now, durationMs });
  }

  hangup(cause: string): void {
    this.stop(cause);
  }

  private stop(cause: string): void {
    if (this.hungUp !== null) return;
    this.hungUp = cause;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** Everything the call sent to the caller, decoded to 8 kHz PCM. */
  recording(): Int16Array {
    const total = this.recorded.reduce((n, f) => n + f.length, 0);
    const bytes = new Uint8Array(total);
    let o = 0;
    for (const f of this.recorded) {
      bytes.set(f, o);
      o += f.length;
    }
    return g711Decode('mulaw', bytes);
  }
}

/** Audible = some sample above −48 dBFS (|x| > 128): played-back silence and μ-law idle noise are not. */
function isAudible(mulawFrame: Uint8Array): boolean {
  const pcm = g711Decode('mulaw', mulawFrame);
  for (let i = 0; i < pcm.length; i++) if (pcm[i]! > 128 || pcm[i]! < -128) return true;
  return false;
}
