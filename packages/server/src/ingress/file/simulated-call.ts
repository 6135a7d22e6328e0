/**
 * A simulated call: the caller's audio comes from a WAV file, one `<Stream>` forks it to an app,
 * and everything played back is recorded (the `callstream call` command and the end-to-end tests).
 */
import { parseStreamElement, type StopReason } from '@callstream/protocol';
import type { Runtime } from '../../app.js';
import type { Stream, StreamStats } from '../../stream/stream.js';
import { resampleOnce } from '../../media/resample.js';
import { readWav } from '../../media/wav.js';
import { FileCallerLeg, type ReceivedDtmf } from './file-leg.js';

/** Options of {@link runSimulatedCall}. */
export interface SimulatedCallOptions {
  /** The caller's audio: WAV bytes, any rate/format `readWav` accepts. */
  wav: Uint8Array;
  /** The stream's WebSocket URL. */
  streamUrl: string;
  /** `<Stream>` attributes (XML names), e.g. `{ bidirectional: 'true', contentType: 'audio/x-mulaw;rate=8000' }`. */
  attributes?: Record<string, string>;
  /** After the caller's audio: end once no playback for this long (ms, default 1500). */
  tailMs?: number;
  /** After the caller's audio: end at the latest after this long (ms, default 20000). */
  maxTailMs?: number;
  from?: string;
  to?: string;
  /** Called once the call exists (tests press digits, inspect streams). */
  onCall?: (ctx: { leg: FileCallerLeg; stream: Stream }) => void;
}

/** What a simulated call produced. */
export interface SimulatedCallResult {
  callId: string;
  streamId: string;
  /** Audio sent back to the caller, 8 kHz mono PCM, one frame per tick of the call. */
  reply: Int16Array;
  /** Caller audio actually played, ms. */
  callerAudioMs: number;
  /** End of caller audio → first playback frame (ms), or null if none came after it. */
  responseLatencyMs: number | null;
  stats: StreamStats;
  /**
   * Where the reply differs from the app's audio in time: silence played mid-utterance because the
   * app's audio came late (`drySpellMs`) and audio removed by catch-up (`catchUpMs`), ms.
   */
  playout: { drySpellMs: number; catchUpMs: number };
  endReason: StopReason | null;
  status: string;
  dtmfReceived: ReceivedDtmf[];
  /** Attribute warnings and rejection from `<Stream>` validation. */
  warnings: string[];
  rejection: string | null;
  debugLog: ReturnType<Stream['debugLog']['list']>;
}

/**
 * Runs one simulated call on `runtime` in (media-clock) real time and resolves when it has ended
 * and its callbacks are delivered (or after a 10 s grace).
 * @throws WavError if `wav` is not a readable WAV file
 * @throws CapacityError if admission control refuses the call (config `calls`)
 */
export async function runSimulatedCall(
  runtime: Runtime,
  options: SimulatedCallOptions,
): Promise<SimulatedCallResult> {
  const audio = readWav(options.wav);
  const samples =
    audio.sampleRate === 8000 ? audio.samples : resampleOnce(audio.samples, audio.sampleRate, 8000);
  const admission = runtime.admission.admit();
  const leg = new FileCallerLeg(runtime.mediaClock, samples);
  const call = runtime.newCall(
    leg,
    { from: options.from ?? 'callstream-sim', to: options.to ?? 'callstream' },
    admission,
  );
  const parsed = parseStreamElement(options.attributes ?? {}, options.streamUrl, {
    strict: runtime.config.strict,
  });
  const stream = call.startStream(parsed.params, parsed.rejection);
  for (const w of parsed.warnings) stream.debugLog.add('warning', w.code, w.message);
  // The caller starts speaking once the app is listening (or the stream has failed), so every run
  // streams the whole WAV whatever the connect time.
  if (stream.status === 'in-progress' || stream.ended) leg.play();
  stream.onEvent((e) => {
    if (e.type === 'connected' || e.type === 'ended') leg.play();
  });
  options.onCall?.({ leg, stream });

  const tailMs = options.tailMs ?? 1500;
  const maxTailMs = options.maxTailMs ?? 20000;
  await new Promise<void>((resolve) => {
    const off = runtime.mediaClock.onTick((now) => {
      let end = call.ended || stream.ended;
      if (!end && leg.callerAudioEndMs !== null && now >= leg.callerAudioEndMs) {
        const sinceEnd = now - leg.callerAudioEndMs;
        // Quiet = no audible playback for tailMs (an echo of silence keeps the queue busy but is not audio).
        const idleSince = Math.max(leg.callerAudioEndMs, leg.lastPlaybackMs ?? 0);
        const quiet = now - idleSince >= tailMs;
        end = quiet || sinceEnd >= maxTailMs;
      }
      if (end) {
        off();
        resolve();
      }
    });
  });
  call.hangup('NORMAL_CLEARING');
  await Promise.race([runtime.callbacks.idle(), new Promise((r) => setTimeout(r, 10000).unref())]);
  return {
    callId: call.info.callId,
    streamId: stream.streamId,
    reply: leg.recording(),
    callerAudioMs: (samples.length / 8000) * 1000,
    responseLatencyMs:
      leg.firstPlaybackAfterEndMs !== null && leg.callerAudioEndMs !== null
        ? leg.firstPlaybackAfterEndMs - leg.callerAudioEndMs
        : null,
    stats: stream.stats,
    playout: { drySpellMs: stream.playoutDrySpellMs, catchUpMs: stream.playoutCatchUpMs },
    endReason: stream.endReason,
    status: stream.status,
    dtmfReceived: leg.dtmfReceived,
    warnings: parsed.warnings.map((w) => w.message),
    rejection: parsed.rejection,
    debugLog: stream.debugLog.list(),
  };
}

/** A human-readable summary of a simulated call (printed by the CLI). */
export function formatSummary(r: SimulatedCallResult): string {
  const kv = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || '(none)';
  return [
    `call ${r.callId} stream ${r.streamId}: ${r.status}${r.endReason ? ` (${r.endReason})` : ''}`,
    `  caller audio        ${(r.callerAudioMs / 1000).toFixed(2)} s`,
    `  sent to app         ${kv(r.stats.sent)}`,
    `  received from app   ${kv(r.stats.received)}`,
    `  checkpoints acked   ${r.stats.checkpointsAcked}`,
    `  clears              ${r.stats.clears}`,
    `  reply audio         ${(r.reply.length / 8000).toFixed(2)} s`,
    `  playout             ${r.playout.drySpellMs} ms silence inside utterances (app audio late), ${r.playout.catchUpMs} ms caught up`,
    `  response latency    ${r.responseLatencyMs === null ? 'no audio from the app after the caller finished' : `${r.responseLatencyMs} ms (end of caller audio -> first audio from the app)`}`,
    ...(r.dtmfReceived.length
      ? [`  DTMF received       ${r.dtmfReceived.map((d) => d.digit).join('')}`]
      : []),
    ...(r.rejection ? [`  rejected            ${r.rejection}`] : []),
    ...r.warnings.map((w) => `  warning             ${w}`),
  ].join('\n');
}
