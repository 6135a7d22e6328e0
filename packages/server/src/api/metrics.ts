/**
 * Prometheus metrics (`/metrics`): live calls and streams, media frames, reconnects, callbacks,
 * playout queue depth. Values are read at scrape time from the engine's own counters; ended
 * streams' counters are folded into totals when they end.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Runtime } from '../app.js';
import type { Records } from '../store/records.js';
import type { Stream } from '../stream/stream.js';
import { FORGONE_REASONS } from '../media/playout.js';

/** The metrics registry of one server. */
export class Metrics {
  readonly registry = new Registry();
  private readonly ended = {
    sent: 0,
    received: 0,
    dropped: 0,
    reconnects: 0,
    catchUpMs: 0,
    drySpellMs: 0,
    /** Lateness given up, ms by reason (media/playout.ts). */
    forgoneMs: {} as Record<string, number>,
  };
  private readonly live = new Set<Stream>();
  private readonly extra: Array<() => string> = [];

  constructor(
    private readonly runtime: Runtime,
    records: Records,
  ) {
    const r = this.registry;
    // process_cpu_seconds_total, process_resident_memory_bytes, event-loop lag…: the server's own accounting.
    collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: 10 });
    const self = this;
    const sum = (f: (s: Stream) => number) => [...self.live].reduce((n, s) => n + f(s), 0);
    new Gauge({
      name: 'callstream_live_calls',
      help: 'Calls answered and not ended',
      registers: [r],
      collect() {
        this.set(records.liveCalls.size);
      },
    });
    new Gauge({
      name: 'callstream_live_streams',
      help: 'Streams not ended',
      registers: [r],
      collect() {
        this.set(sum((s) => (s.ended ? 0 : 1)));
      },
    });
    new Counter({
      name: 'callstream_calls_refused_total',
      help: 'new calls refused by admission control (config calls), by reason: max_concurrent, max_rate or overload',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(runtime.admission.stats.refused)) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'callstream_media_frames_sent_total',
      help: 'media events written to apps',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.ended.sent + sum((s) => s.stats.sent.media ?? 0));
      },
    });
    new Counter({
      name: 'callstream_playaudio_received_total',
      help: 'playAudio messages received from apps',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.ended.received + sum((s) => s.stats.received.playAudio ?? 0));
      },
    });
    new Counter({
      name: 'callstream_media_frames_dropped_total',
      help: 'media discarded by backlog overflow',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.ended.dropped + sum((s) => s.stats.mediaDropped));
      },
    });
    new Counter({
      name: 'callstream_ws_reconnects_total',
      help: 'WebSocket re-dials that succeeded',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.ended.reconnects + sum((s) => s.stats.reconnects));
      },
    });
    new Counter({
      name: 'callstream_playout_catchup_seconds_total',
      help: 'late playAudio recovered by playout catch-up (pitch periods overlap-added)',
      registers: [r],
      collect() {
        this.reset();
        this.inc((self.ended.catchUpMs + sum((s) => s.playoutCatchUpMs)) / 1000);
      },
    });
    new Counter({
      name: 'callstream_playout_dry_spell_seconds_total',
      help: 'silence played inside an app utterance because its playAudio came late (what catch-up then recovers)',
      registers: [r],
      collect() {
        this.reset();
        this.inc((self.ended.drySpellMs + sum((s) => s.playoutDrySpellMs)) / 1000);
      },
    });
    new Counter({
      name: 'callstream_playout_lateness_forgone_seconds_total',
      help: 'playout lateness given up by catch-up without recovering it, by reason: ahead (the app sent ahead), pause, checkpoint, dtmf, clear (never owed) or cap (over 10 s)',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        this.reset();
        const total: Record<string, number> = {};
        for (const reason of FORGONE_REASONS) total[reason] = self.ended.forgoneMs[reason] ?? 0;
        for (const s of self.live)
          for (const [k, v] of Object.entries(s.playoutForgoneMs)) total[k] = (total[k] ?? 0) + v;
        for (const [reason, ms] of Object.entries(total)) this.inc({ reason }, ms / 1000);
      },
    });
    new Gauge({
      name: 'callstream_callbacks_delivered_total',
      help: 'status callbacks delivered',
      registers: [r],
      collect() {
        this.set(runtime.callbacks.stats.delivered);
      },
    });
    new Gauge({
      name: 'callstream_callbacks_failed_total',
      help: 'status callbacks given up',
      registers: [r],
      collect() {
        this.set(runtime.callbacks.stats.failed);
      },
    });
    new Gauge({
      name: 'callstream_callbacks_pending',
      help: 'status callbacks queued or retrying',
      registers: [r],
      collect() {
        this.set(runtime.callbacks.pending);
      },
    });
    new Gauge({
      name: 'callstream_playout_queue_ms',
      help: 'queued playback over all streams, ms',
      registers: [r],
      collect() {
        this.set(sum((s) => s.playoutQueuedMs));
      },
    });
    new Gauge({
      name: 'callstream_playout_lateness_ms',
      help: 'playout lateness still to recover by catch-up over all streams, ms (part of the queued playback)',
      registers: [r],
      collect() {
        this.set(sum((s) => s.playoutLatenessMs));
      },
    });
  }

  /** Adds exposition text produced at scrape time (e.g. SIP/RTP counters). */
  addText(producer: () => string): void {
    this.extra.push(producer);
  }

  /** The whole exposition: registry metrics, latency summaries, extra producers. */
  async text(): Promise<string> {
    const l = this.runtime.latency;
    return (
      (await this.registry.metrics()) +
      l.captureToWs.exposition(
        'callstream_capture_to_ws_seconds',
        'caller RTP packet received → its media frame written to the app socket',
      ) +
      l.playToRtp.exposition(
        'callstream_playaudio_to_rtp_seconds',
        'playAudio received → first RTP packet carrying its audio sent',
      ) +
      l.captureToWs.histogramExposition(
        'callstream_capture_to_ws_histogram_seconds',
        'callstream_capture_to_ws_seconds as a histogram (aggregatable over any window)',
      ) +
      l.playToRtp.histogramExposition(
        'callstream_playaudio_to_rtp_histogram_seconds',
        'callstream_playaudio_to_rtp_seconds as a histogram (aggregatable over any window)',
      ) +
      l.tickLateness.exposition(
        'callstream_media_tick_lateness_seconds',
        'how late each 20 ms media-clock tick ran',
      ) +
      l.tickDuration.exposition(
        'callstream_media_tick_duration_seconds',
        "time one media-clock tick's work (every call's mix and send) took",
      ) +
      l.rtpSendInterval.exposition(
        'callstream_rtp_send_interval_seconds',
        'time between consecutive RTP packets of a call leaving the server (20 ms ideal)',
      ) +
      `# HELP callstream_rtp_send_interval_outside_total RTP send intervals outside 20 ± 5 ms\n# TYPE callstream_rtp_send_interval_outside_total counter\ncallstream_rtp_send_interval_outside_total ${l.rtpSendInterval.countOutside(15, 25)}\n` +
      `# HELP callstream_playout_catch_up_refused_total frames of speech played without catch-up because the tick's budget of pitch searches (stream.playoutCatchUpFramesPerTick) was spent\n# TYPE callstream_playout_catch_up_refused_total counter\ncallstream_playout_catch_up_refused_total ${this.runtime.catchUpBudget.refused}\n` +
      (this.runtime.mediaClockStats
        ? `# HELP callstream_media_ticks_skipped_total ticks given up after a stall longer than the catch-up budget\n# TYPE callstream_media_ticks_skipped_total counter\ncallstream_media_ticks_skipped_total ${this.runtime.mediaClockStats.skipped}\n` +
          `# HELP callstream_media_ticks_preempted_total ticks run from inside an I/O batch once 4 ms late (instead of after the batch)\n# TYPE callstream_media_ticks_preempted_total counter\ncallstream_media_ticks_preempted_total ${this.runtime.mediaClockStats.preempted}\n` +
          `# HELP callstream_media_frames_held_total frames a call held into its tick's 4 ms grace window for a stream's late playAudio\n# TYPE callstream_media_frames_held_total counter\ncallstream_media_frames_held_total ${this.runtime.mediaClockStats.deferred}\n` +
          `# HELP callstream_media_frames_held_expired_total held frames sent at the grace deadline without the awaited audio\n# TYPE callstream_media_frames_held_expired_total counter\ncallstream_media_frames_held_expired_total ${this.runtime.mediaClockStats.deferredExpired}\n` +
          `# HELP callstream_media_send_slot_moves_total calls moved to a neighbouring 5 ms send slot to follow their app's real-time audio (stream.playoutAlignSendPhase)\n# TYPE callstream_media_send_slot_moves_total counter\ncallstream_media_send_slot_moves_total ${this.runtime.mediaClockStats.slotMoves}\n`
        : '') +
      this.extra.map((f) => f()).join('')
    );
  }

  /** Starts counting a stream; its counters fold into the totals when it ends. */
  track(stream: Stream): void {
    this.live.add(stream);
    stream.onEvent((e) => {
      if (e.type !== 'ended') return;
      this.live.delete(stream);
      this.ended.sent += stream.stats.sent.media ?? 0;
      this.ended.received += stream.stats.received.playAudio ?? 0;
      this.ended.dropped += stream.stats.mediaDropped;
      this.ended.reconnects += stream.stats.reconnects;
      this.ended.catchUpMs += stream.playoutCatchUpMs;
      this.ended.drySpellMs += stream.playoutDrySpellMs;
      for (const [k, v] of Object.entries(stream.playoutForgoneMs))
        this.ended.forgoneMs[k] = (this.ended.forgoneMs[k] ?? 0) + v;
    });
  }
}
