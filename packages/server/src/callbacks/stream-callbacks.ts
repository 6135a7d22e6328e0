/**
 * Stream status callbacks (protocol.md §4.1–§4.2): turns a stream's domain events into signed
 * HTTP callbacks to its `statusCallbackUrl`.
 */
import { extraHeadersAsHttp } from '@callstream/protocol';
import type { Config } from '../config/config.js';
import type { Stream, StreamEvent } from '../stream/stream.js';
import type { HttpCallbackSender } from './http-callbacks.js';

/** Always-present callback parameters of a stream (§4.2), without `Event`, `Error`, `Timestamp`. */
export function baseCallbackParams(stream: Stream): Record<string, string> {
  const p = stream.params;
  return {
    CallUUID: stream.call.callId,
    From: stream.call.from,
    To: stream.call.to,
    ServiceURL: p.serviceUrl,
    StreamID: stream.streamId,
    ExtraHeaders: p.extraHeaders.raw,
    bidirectional: String(p.bidirectional),
    audioTrack: p.audioTrack,
    streamTimeout: String(p.streamTimeout),
    contentType: p.contentType,
    extraHeaders: p.extraHeaders.raw,
    keepCallAlive: String(p.keepCallAlive),
  };
}

/** Maps a domain event to the callback `Event` and its extra parameters; `null` = no callback. */
export function callbackFor(
  e: StreamEvent,
  config: Config,
): { event: string; extra: Record<string, string>; error: string } | null {
  switch (e.type) {
    case 'started':
      return { event: 'StartStream', extra: {}, error: '' };
    case 'degraded':
      return { event: 'DegradedStream', extra: { BufferLevel: String(e.level) }, error: '' };
    case 'played':
      return { event: config.stream.checkpointCallbackEvent, extra: { Name: e.name }, error: '' };
    case 'cleared':
      return { event: 'ClearedAudio', extra: {}, error: '' };
    case 'ended':
      if (e.status === 'dropped')
        return { event: 'DroppedStream', extra: { Reason: e.reason }, error: e.error };
      if (e.reason === 'call_hangup' && !config.stream.stopStreamCallbackOnHangup) return null;
      return { event: 'StopStream', extra: { Reason: e.reason }, error: '' };
    case 'connected':
      return null;
  }
}

/**
 * Subscribes a stream's status callbacks to `sender`. No-op without a `statusCallbackUrl`.
 * A final delivery failure is written to the stream's debug log (`callback_failed`).
 */
export function attachStatusCallbacks(stream: Stream, sender: HttpCallbackSender, config: Config): void {
  const url = stream.params.statusCallbackUrl;
  if (!url) return;
  const base = baseCallbackParams(stream);
  const headers = config.stream.extraHeadersAsHttpHeaders
    ? extraHeadersAsHttp(stream.params.extraHeaders)
    : {};
  stream.onEvent((e) => {
    const cb = callbackFor(e, config);
    if (!cb) return;
    sender.send({
      key: stream.streamId,
      url,
      method: stream.params.statusCallbackMethod,
      params: {
        Event: cb.event,
        Error: cb.error,
        ...base,
        Timestamp: new Date(e.at).toISOString(),
        ...cb.extra,
      },
      headers,
      onFailure: (cause) =>
        stream.debugLog.add('warning', 'callback_failed', `${cb.event} callback to ${url} failed: ${cause}`),
    });
  });
}
