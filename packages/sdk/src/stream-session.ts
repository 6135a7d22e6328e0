/**
 * A typed handler for one stream socket, for applications (the WebSocket **server** side of
 * protocol.md §3). Wrap each accepted `ws` connection in a {@link StreamSession}: events arrive
 * typed (media payloads also decoded to PCM); `playAudio`, `checkpoint`, `clearAudio` and
 * `sendDTMF` go out in the exact wire format.
 */
import type WebSocket from 'ws';
import {
  appMessages,
  decodeServerEvent,
  type ClearedAudioEvent,
  type DtmfEvent,
  type MediaEvent,
  type PlayedStreamEvent,
  type StartEvent,
  type StopEvent,
  type StreamEncoding,
} from '@callstream/protocol';
import { decodePayload, encodePcm } from './audio.js';

/** Handlers of a {@link StreamSession}. */
export interface StreamSessionEvents {
  start: (event: StartEvent) => void;
  /** `pcm` is the payload decoded to 16-bit samples at `start.mediaFormat.sampleRate`. */
  media: (event: MediaEvent, pcm: Int16Array) => void;
  dtmf: (event: DtmfEvent) => void;
  playedStream: (event: PlayedStreamEvent) => void;
  clearedAudio: (event: ClearedAudioEvent) => void;
  stop: (event: StopEvent) => void;
  /** A message that could not be decoded (the session goes on). */
  invalid: (reason: string, text: string) => void;
  close: (code: number, reason: string) => void;
}

type Handlers = { [K in keyof StreamSessionEvents]: Array<StreamSessionEvents[K]> };

/** Options of {@link StreamSession.playAudio}. */
export interface PlayAudioOptions {
  /** Default: the stream's encoding. */
  contentType?: StreamEncoding | 'raw' | 'wav';
  /** Hz; default: the stream's rate. */
  sampleRate?: number;
}

/** One stream socket, typed. */
export class StreamSession {
  /** The `start` event's body once received. */
  start: StartEvent['start'] | null = null;
  /** Messages received, by event. */
  readonly received: Record<string, number> = {};
  private readonly handlers: Handlers = {
    start: [],
    media: [],
    dtmf: [],
    playedStream: [],
    clearedAudio: [],
    stop: [],
    invalid: [],
    close: [],
  };

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      const r = decodeServerEvent(text);
      if (!r.ok) {
        this.fire('invalid', r.reason, text);
        return;
      }
      const e = r.message;
      this.received[e.event] = (this.received[e.event] ?? 0) + 1;
      switch (e.event) {
        case 'start':
          this.start = e.start;
          this.fire('start', e);
          break;
        case 'media':
          this.fire('media', e, decodePayload(e.media.payload, this.encoding));
          break;
        case 'dtmf':
          this.fire('dtmf', e);
          break;
        case 'playedStream':
        case 'played':
          this.fire('playedStream', e);
          break;
        case 'clearedAudio':
          this.fire('clearedAudio', e);
          break;
        case 'stop':
          this.fire('stop', e);
          break;
      }
    });
    socket.on('close', (code, reason) => this.fire('close', code, reason.toString()));
  }

  /** Registers a handler. */
  on<K extends keyof StreamSessionEvents>(event: K, handler: StreamSessionEvents[K]): this {
    (this.handlers[event] as Array<StreamSessionEvents[K]>).push(handler);
    return this;
  }

  private fire<K extends keyof StreamSessionEvents>(
    event: K,
    ...args: Parameters<StreamSessionEvents[K]>
  ): void {
    for (const h of this.handlers[event]) (h as (...a: Parameters<StreamSessionEvents[K]>) => void)(...args);
  }

  /** The stream's encoding (from `start`; μ-law before it). */
  get encoding(): StreamEncoding {
    return this.start?.mediaFormat.encoding ?? 'audio/x-mulaw';
  }

  /** The stream's sample rate, Hz (from `start`; 8000 before it). */
  get sampleRate(): number {
    return this.start?.mediaFormat.sampleRate ?? 8000;
  }

  /** The stream id (from `start`). */
  get streamId(): string {
    return this.start?.streamId ?? '';
  }

  private send(text: string): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(text);
  }

  /**
   * Queues audio for the caller. `Int16Array` PCM is encoded in `contentType` (default the stream's
   * encoding); bytes are sent as they are.
   */
  playAudio(audio: Int16Array | Uint8Array, options: PlayAudioOptions = {}): void {
    const contentType = options.contentType ?? this.encoding;
    const encodingForPcm: StreamEncoding = contentType === 'audio/x-mulaw' ? 'audio/x-mulaw' : 'audio/x-l16';
    const bytes = audio instanceof Int16Array ? encodePcm(audio, encodingForPcm) : audio;
    this.send(appMessages.playAudio(contentType, options.sampleRate ?? this.sampleRate, bytes));
  }

  /** Marks a point in the playback; `playedStream` with this name follows once it is played. */
  checkpoint(name: string): void {
    this.send(appMessages.checkpoint(this.streamId, name));
  }

  /** Discards queued playback (barge-in); `clearedAudio` follows. */
  clearAudio(): void {
    this.send(appMessages.clearAudio(this.streamId));
  }

  /** Sends DTMF digits to the caller (`0-9 * # A-D`). */
  sendDTMF(digits: string): void {
    this.send(appMessages.sendDTMF(digits));
  }

  /** Closes the socket cleanly (the stream ends with `remote_closed`). */
  close(code = 1000): void {
    this.socket.close(code);
  }
}
