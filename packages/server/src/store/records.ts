/**
 * Call and stream records: written when state changes (protocol.md §2.3, §5), served to the REST
 * API. Streams of live calls are also kept in memory so a read right after a change sees it; the
 * database is the source for everything else and after a restart.
 */
import type { Clock, TimerHandle } from '../clock/clock.js';
import type { Config } from '../config/config.js';
import { billStream } from '../billing/billing.js';
import type { Call } from '../call/call.js';
import type { Stream } from '../stream/stream.js';
import type { StreamRow, Store } from './store.js';

/** Persists records of calls and streams; see the module comment. */
export class Records {
  /** Live calls by call UUID (answered, not ended). */
  readonly liveCalls = new Map<string, Call>();
  /** Streams of live calls, by stream id. */
  private readonly liveStreams = new Map<string, Stream>();
  private readonly lastPersistedMedia = new Map<string, number>();
  private progressTimer: TimerHandle | undefined;

  constructor(
    readonly store: Store,
    private readonly config: Config,
    private readonly clock: Clock,
  ) {}

  /** Bills a stream with the configured rate and interval (§5). */
  bill(firstMediaMs: number | null, endMs: number) {
    return billStream(firstMediaMs, endMs, this.config.billing);
  }

  /** Starts recording a call and every stream it creates. */
  trackCall(call: Call): void {
    this.liveCalls.set(call.info.callId, call);
    void this.store.insertCall({
      call_uuid: call.info.callId,
      direction: call.info.direction,
      from_number: call.info.from,
      to_number: call.info.to,
      caller_name: '',
      status: 'in-progress',
      created_ms: call.startedAt,
      answered_ms: call.startedAt,
      ended_ms: null,
      hangup_cause: null,
    });
    call.onStreamCreated((s) => this.trackStream(s));
    this.scheduleProgress();
    void call.done.then((cause) => {
      this.liveCalls.delete(call.info.callId);
      void this.store.updateCall(call.info.callId, {
        status: 'completed',
        ended_ms: call.endedAt,
        hangup_cause: cause,
      });
      for (const s of call.streams.values()) {
        this.liveStreams.delete(s.streamId);
        this.lastPersistedMedia.delete(s.streamId);
      }
    });
  }

  private trackStream(s: Stream): void {
    this.liveStreams.set(s.streamId, s);
    void this.store.insertStream(streamRow(s, this.config));
    s.onEvent((e) => {
      switch (e.type) {
        case 'connected':
          if (!e.reconnect) void this.store.updateStream(s.streamId, { status: s.status });
          return;
        case 'started':
          void this.store.updateStream(s.streamId, { start_ms: e.at, last_media_ms: e.at });
          this.lastPersistedMedia.set(s.streamId, e.at);
          return;
        case 'ended': {
          const b = this.bill(s.firstMediaAt, e.at);
          void this.store.updateStream(s.streamId, {
            status: e.status,
            end_ms: e.at,
            end_reason: e.reason,
            last_media_ms: s.lastMediaAt,
            bill_duration: b.billDuration,
            rounded_bill_duration: b.roundedBillDuration,
            billed_amount: b.billedAmount,
            debug_log: JSON.stringify(s.debugLog.list()),
          });
          return;
        }
        default:
          return;
      }
    });
  }

  /** One timer for all live streams: persists each stream's last media time (crash recovery). */
  private scheduleProgress(): void {
    if (this.progressTimer !== undefined) return;
    this.progressTimer = this.clock.setTimeout(() => {
      this.progressTimer = undefined;
      const batch: Array<[string, number]> = [];
      for (const s of this.liveStreams.values()) {
        if (s.ended || s.lastMediaAt === null) continue;
        if (this.lastPersistedMedia.get(s.streamId) === s.lastMediaAt) continue;
        this.lastPersistedMedia.set(s.streamId, s.lastMediaAt);
        batch.push([s.streamId, s.lastMediaAt]);
      }
      void this.store.updateLastMedia(batch);
      if (this.liveCalls.size > 0) this.scheduleProgress();
    }, this.config.store.progressIntervalMs);
  }

  /** A live stream object, if its call is live. */
  liveStream(streamId: string): Stream | undefined {
    return this.liveStreams.get(streamId);
  }

  /**
   * The record of a stream: from memory while its call lives (always current), else from the store.
   */
  async streamRecord(callUuid: string, streamId: string): Promise<StreamRow | undefined> {
    const live = this.liveStreams.get(streamId);
    if (live && live.call.callId === callUuid) return streamRow(live, this.config);
    return this.store.getStream(callUuid, streamId);
  }

  /** Records of a call's streams, oldest first, live state overlaid. */
  async listStreams(
    callUuid: string,
    limit: number,
    offset: number,
  ): Promise<{ rows: StreamRow[]; total: number }> {
    await this.store.flush();
    const page = await this.store.listStreams(callUuid, limit, offset);
    return {
      total: page.total,
      rows: page.rows.map((r) => {
        const live = this.liveStreams.get(r.stream_id);
        return live ? streamRow(live, this.config) : r;
      }),
    };
  }

  /** Stops the progress timer. */
  close(): void {
    this.clock.clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
  }
}

/** The stored shape of a stream, from the live object. */
export function streamRow(s: Stream, config: Config): StreamRow {
  const p = s.params;
  const ended = s.endedAt !== null;
  const b = ended ? billStream(s.firstMediaAt, s.endedAt!, config.billing) : null;
  return {
    stream_id: s.streamId,
    call_uuid: s.call.callId,
    service_url: p.serviceUrl,
    bidirectional: p.bidirectional ? 1 : 0,
    audio_track: p.audioTrack,
    content_type: p.contentType,
    status: s.status,
    status_callback_url: p.statusCallbackUrl ?? '',
    status_callback_method: p.statusCallbackMethod,
    extra_headers: p.extraHeaders.raw,
    stream_timeout: p.streamTimeout,
    keep_call_alive: p.keepCallAlive ? 1 : 0,
    noise_cancellation: p.noiseCancellation ? 1 : 0,
    noise_cancellation_level: p.noiseCancellationLevel,
    created_us: Math.round(s.createdAt * 1000),
    start_ms: s.firstMediaAt,
    last_media_ms: s.lastMediaAt,
    end_ms: s.endedAt,
    end_reason: s.endReason,
    bill_duration: b?.billDuration ?? 0,
    rounded_bill_duration: b?.roundedBillDuration ?? 0,
    billed_amount: b?.billedAmount ?? '0.00000',
    debug_log: JSON.stringify(s.debugLog.list()),
  };
}
