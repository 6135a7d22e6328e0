/**
 * The playout queue of one bidirectional stream (protocol.md §3.6): a FIFO of audio, DTMF and
 * checkpoint markers drained one 20 ms frame per media-clock tick.
 *
 * Policy when full: audio beyond `capSamples` (40 s by default) is rejected — the rest of the
 * message and later messages — and reported to the caller of {@link enqueueAudio}; checkpoints
 * and DTMF are always queued. `clear` acts at once. Pure: no timers, no I/O.
 *
 * Catch-up (optional, {@link PlayoutQueueOptions.catchUp}): an app that streams audio at real-time
 * pace (a relay, an echo, a live TTS) is sometimes late — its process, the network, the caller or
 * this server stalled — so the queue runs dry mid-stream and silence goes out (or the media clock
 * skips ticks), and then the late frames arrive together. A plain FIFO keeps that delay for the
 * rest of the call: every later frame waits behind the bunch. So the queue keeps a *lateness*
 * account per talk session: silence played in dry spells of at most `maxGapSamples` (or in longer
 * stalls, below) and ticks the clock skipped are added (skipped ticks only while the app streams,
 * or the queue holds little beyond the lateness: a prompt sent ahead is not made late by them), and
 * while lateness remains, frames are played with one pitch period removed ({@link accelerateFrame},
 * as adaptive jitter buffers do) — several periods while more than {@link FAST_CATCH_UP_FRAMES} are
 * late, or, in silence, up to a whole frame; past {@link DEEP_LATENESS_FRAMES}, a whole frame
 * crossfaded when no period can be removed or the CPU budget refuses the search — until the delay
 * is recovered. Audio an app sends ahead of time (a prompt in a burst) is never touched: a queue
 * deeper than the lateness by more than four frames and more than the lateness itself, filled
 * faster than {@link AHEAD_PACE} × real time, ends the session, and so do a pause (a dry spell
 * longer than `maxGapSamples` that was not a stall, below), running dry at a checkpoint when an
 * utterance ended (the app had sent ahead within the last second, or was not streaming: a
 * real-time app that checkpoints as it goes keeps its account), DTMF and `clear`.
 * Nothing is dropped: every sample plays, some pitch periods overlap-added, silent frames possibly
 * skipped.
 *
 * The pace is what arrived over the last {@link PACE_PULLS} ticks (1 s, skipped ticks included):
 * shorter windows misread a real-time app on a disturbed machine — its frames come in bunches of
 * 100–200 ms — as bursts sent ahead or as pauses, and each misreading lost lateness for good
 * (issue 6: at 27 % steal, 200 echo streams drifted to 2.3 s of delay).
 *
 * A standing backlog is lateness too. Jitter makes a real-time app's frame miss its tick now and
 * then; the tick plays silence (or the call holds its frame briefly, see Call), the next frame
 * arrives on time, and from then on every frame waits behind one more — a backlog the dry-spell
 * account misses when the session had just ended (a checkpoint reached on an empty queue) and
 * that no stall explains. So the queue also watches windows of {@link BACKLOG_WINDOW} pulls: when
 * every pull played a full frame, the app delivered what was played (± 10 %: real-time pace, not a
 * burst sent ahead), and the queue never fell below `min` after a pull while varying by at most two
 * frames (a steady depth, not a burst draining), then `min` was never needed and is lateness to
 * recover. This also recovers what a stall of more than four frames left behind (the dry-spell
 * account gives that up as audio sent ahead). A jittery app's depth is never that steady — on an
 * overloaded machine frames come in bunches of 100–200 ms — so a second, longer window of
 * {@link LONG_BACKLOG_WINDOW} pulls (2 s) tolerates any variation of depth: when every pull played
 * a full frame, the app delivered what was played (± 15 %) and each quarter of the window got
 * between half and one and a half times real time (streaming, not a burst followed by silence),
 * then the least depth minus one frame of cushion is lateness. (Issue 6: at 200 echo calls, a
 * saturated server's socket buffers held 1.5 s of the app's audio, which drained into the queue as
 * a burst when load fell — read as sent ahead — and 3 s of delay stayed until the calls ended.)
 *
 * A stall longer than `maxGapSamples` (200 ms) is told from a pause by what follows it: an app
 * that was late owes the audio of the silence and delivers it at once — a real-time app's backlog
 * arrives together when its stall ends (or the caller's, whose late packets it echoes) — while an
 * app resuming after a pause starts a new utterance, at real-time pace or a few times faster. So
 * a dry spell of up to {@link STALL_MAX_FRAMES} frames is lateness when at least
 * {@link STALL_REPAID} of its length in audio arrives before the second pull after the audio
 * resumed; otherwise it was a pause. Only an app that was streaming at real-time pace when the
 * queue ran dry can have stalled (≥ {@link STALL_PACE} of the audio played over the last
 * {@link PACE_PULLS} pulls arrived in them, in at least {@link STALL_ACTIVE_PULLS} of them): an
 * app whose queue ran dry because it had sent a clip or a prompt ahead and then stopped was
 * pausing, and a short clip it sends next at once must not be sped up. (Before this, every dry
 * spell over 200 ms was a pause, and on a disturbed machine each stall of the app or the callers
 * added its length to the playout delay for good, unless a steady half second followed: delays of
 * seconds at 200 echo calls, issue 6.)
 */

/** Lateness (frames) beyond which catch-up may remove several pitch periods per frame. */
export const FAST_CATCH_UP_FRAMES = 3;

/**
 * Lateness (frames: 100 ms) beyond which a frame whose pitch search the CPU budget refuses, or
 * that has no period to remove (an onset, an unvoiced sound), is still shortened — by a whole
 * frame, crossfaded ({@link accelerateFrame}'s `fallbackRemove`). Past ~150 ms one-way delay a
 * conversation suffers (ITU-T G.114); under overload, when searches are refused on most ticks,
 * lateness otherwise grows faster than catch-up recovers it (issue 6: seconds of delay).
 */
export const DEEP_LATENESS_FRAMES = 5;

/**
 * Cap on lateness (frames: 10 s). Lateness is only credited from evidence (dry spells of a
 * streaming app, skipped ticks, standing backlogs) and given up at every utterance boundary, so
 * the cap is a safety bound, not a policy: at 1 s (before), a disturbed machine's backlog of 2 s
 * or more lost its excess for good (issue 6: 2–17 s given up per stream in overloaded runs).
 */
export const MAX_LATENESS_FRAMES = 500;

/**
 * A frame is held for the app's next one ({@link PlayoutQueue.waiting}) only if the app's audio
 * arrived within this many pulls (40 ms): a real-time app's frames come one per tick, a little
 * before or after it.
 */
export const WAIT_RECENT_PULLS = 2;

/** Pulls (20 ms each) per standing-backlog window: 0.5 s. */
export const BACKLOG_WINDOW = 25;

/** Pulls per long (jitter-tolerant) standing-backlog window: 2 s, in quarters of 0.5 s. */
export const LONG_BACKLOG_WINDOW = 100;

/** Longest dry spell (frames: 1 s) that may still count as a stall (see the module comment). */
export const STALL_MAX_FRAMES = 50;

/** Least pace (audio enqueued ÷ played over the last PACE_PULLS pulls) of an app sending ahead. */
export const AHEAD_PACE = 1.5;

/** Share of a long dry spell the app must repay at once for it to count as a stall. */
export const STALL_REPAID = 0.8;

/** Pulls (1 s) over which the app's pace is measured (see the module comment). */
export const PACE_PULLS = 50;

/**
 * Least pace (audio enqueued ÷ played over PACE_PULLS) of an app that streams: a dry spell may then
 * be a stall, skipped ticks make it late, and a checkpoint on an empty queue may be mid-stream.
 */
export const STALL_PACE = 0.5;

/** …with audio arriving in at least this many of those pulls (not one clip sent at once). */
export const STALL_ACTIVE_PULLS = 10;

/**
 * A per-tick CPU budget for catch-up, shared by every stream of the process: at most `perTick`
 * pitch searches (frames of speech to accelerate) per media-clock tick; a silent frame goes whole
 * without one and is not counted. Each search costs ~15 µs (`npm run bench:catch-up`); after a
 * stall every stream is late at once, and unbounded catch-up then lengthens the very ticks that are
 * already late — a feedback loop measured at 200 echo calls (issue 6: tick p50 4.1 ms,
 * playAudio→RTP p99 1.2 s).
 * A stream refused this tick keeps its lateness and plays its frame as is; the media clock rotates
 * which call ticks first, so refusals are shared. Pure: keyed by the tick's time, no timers — so
 * each send slot's tick (clock.ts TICK_SLOTS, due 5 ms apart) has its own budget: a slot's burst of
 * work stays bounded, and no slot starves the ones after it.
 */
export class CatchUpBudget {
  private tickMs = NaN;
  private used = 0;
  /** Searches refused (metrics). */
  refused = 0;

  /** @param perTick accelerated frames allowed per tick (≥ 1) */
  constructor(readonly perTick: number) {}

  /** True (and counted) if one more stream may search its frame in the tick of `tickMs`. */
  take(tickMs: number): boolean {
    if (tickMs !== this.tickMs) {
      this.tickMs = tickMs;
      this.used = 0;
    }
    if (this.used >= this.perTick) {
      this.refused++;
      return false;
    }
    this.used++;
    return true;
  }
}

import { accelerateFrame } from './time-scale.js';

type Item =
  | { kind: 'audio'; samples: Int16Array; offset: number; receivedAt: number }
  | { kind: 'checkpoint'; name: string }
  | { kind: 'dtmf'; digit: string; remaining: number; started: boolean };

/**
 * Why catch-up gave lateness up (see the module comment): the app sent ahead (a queue deeper
 * than the lateness by more than four frames and more than the lateness, filled faster than
 * real time), a pause (a dry spell past `maxGapSamples` not repaid), the queue ran dry at a
 * checkpoint that ended an utterance, a DTMF digit, `clear`, or the cap on lateness
 * ({@link MAX_LATENESS_FRAMES}).
 */
export const FORGONE_REASONS = ['ahead', 'pause', 'checkpoint', 'dtmf', 'clear', 'cap'] as const;

/** One of {@link FORGONE_REASONS}. */
export type ForgoneReason = (typeof FORGONE_REASONS)[number];

/** What one {@link PlayoutQueue.pull} produced. */
export interface PullResult {
  /** Samples of queued audio written into the frame (0 = the frame is silence). */
  audioSamples: number;
  /** Checkpoints whose audio is entirely in this frame or earlier ones: ack once it is sent. */
  checkpoints: string[];
  /** DTMF digits that start with this frame. */
  dtmf: string[];
}

/** Options of a {@link PlayoutQueue}. */
export interface PlayoutQueueOptions {
  /** Samples per 20 ms frame at the call rate (160 at 8 kHz). */
  frameSamples: number;
  /** Maximum queued audio + DTMF time, in samples (40 s × rate). */
  capSamples: number;
  /** Called when an audio item's first sample is pulled, with its `receivedAt` (latency metrics). */
  onFirstPull?: (receivedAt: number) => void;
  /** Catch-up after late audio (see the module comment); off when absent. */
  catchUp?: {
    /**
     * A dry spell up to this long (samples) is lateness when audio resumes; a longer one (up to
     * {@link STALL_MAX_FRAMES}) only if the app then repays it at once (see the module comment).
     */
    maxGapSamples: number;
    /** Pitch search range and limits of {@link accelerateFrame} (`maxRemove` is the lateness). */
    minPeriod: number;
    maxPeriod: number;
  };
}

/** Catch-up settings for a call rate: periods 2.5–15 ms, gaps up to `maxGapMs` count as lateness. */
export function catchUpFor(
  sampleRate: number,
  maxGapMs: number,
): NonNullable<PlayoutQueueOptions['catchUp']> {
  return {
    maxGapSamples: Math.round((maxGapMs * sampleRate) / 1000),
    minPeriod: Math.round(sampleRate / 400),
    maxPeriod: Math.round((sampleRate * 15) / 1000),
  };
}

/** FIFO playout with checkpoints; see the module comment for the policy. */
export class PlayoutQueue {
  /** Queued items from `head` on; consumed slots are emptied at once (no frame outlives its pull). */
  private items: (Item | undefined)[] = [];
  private head = 0;
  private queued = 0;
  /** Silence samples played since the queue last ran dry mid-stream; -1: not in a dry spell. */
  private gap = -1;
  /** Lateness of this talk session still to recover, samples (see the module comment). */
  private lateness = 0;
  /**
   * Audio resumed after a dry spell longer than `maxGapSamples`: its length (samples; -1: none), the
   * audio enqueued since and the pulls since — stall or pause is decided within two pulls.
   */
  private resumeGap = -1;
  private resumeEnqueued = 0;
  private resumePulls = 0;
  /** Samples enqueued per pull over the last PACE_PULLS pulls (a ring), their sum, and since the last pull. */
  private readonly paceRing = new Int32Array(PACE_PULLS);
  private paceIndex = 0;
  private paceSum = 0;
  private enqueuedSincePull = 0;
  /** Pulls among the last PACE_PULLS that had audio enqueued since the one before. */
  private paceActive = 0;
  /** Pulls since the queue last stood more than four frames beyond the lateness (sent ahead). */
  private pullsSinceAhead = Infinity;
  /** The app was streaming in real time when the current dry spell began (see the module comment). */
  private streamingBeforeGap = false;
  private scratch: Int16Array | null = null;
  /** Standing-backlog window (see the module comment): full pulls, samples enqueued, depth range. */
  private readonly backlog = { pulls: 0, enqueued: 0, min: Infinity, max: 0 };
  /**
   * Long standing-backlog window: full pulls, samples enqueued (and when the quarter began), least
   * depth, every quarter in pace so far.
   */
  private readonly longBacklog = { pulls: 0, enqueued: 0, quarterFrom: 0, min: Infinity, steady: true };
  /** The last pull played queued audio (see {@link waiting}). */
  private lastPullAudio = false;
  /** Pulls since audio was last enqueued (see {@link waiting}). */
  private pullsSinceAudio = Infinity;
  private readonly result: PullResult = { audioSamples: 0, checkpoints: [], dtmf: [] };
  /** Samples removed by catch-up so far (metrics). */
  acceleratedSamples = 0;
  /**
   * Silence played inside talk sessions so far, samples: dry spells after which the app's audio
   * resumed (it arrived late, so the audio heard has a gap there). Counted where catch-up is on.
   */
  drySpellSamples = 0;
  /**
   * Lateness given up without being recovered, samples, by reason (metrics): delay that stays in
   * the playout, or — for a pause, a checkpoint, DTMF and clear — was never owed.
   */
  readonly forgoneSamples = Object.fromEntries(FORGONE_REASONS.map((r) => [r, 0])) as Record<
    ForgoneReason,
    number
  >;

  /** The app's voice pitch as catch-up last found it ({@link accelerateFrame}'s `periodHint`). */
  private readonly pitch = { period: 0 };

  constructor(private readonly options: PlayoutQueueOptions) {}

  /** Lateness (samples) recorded and not yet recovered by catch-up. */
  get latenessSamples(): number {
    return this.lateness;
  }

  /** Queued audio and DTMF time, samples. */
  get queuedSamples(): number {
    return this.queued;
  }

  /** True when nothing (audio, DTMF or checkpoint) is queued. */
  get isEmpty(): boolean {
    return this.head >= this.items.length;
  }

  /**
   * True when the last pull played audio, nothing is queued now, and the app's audio has been
   * arriving just in time (some came within the last {@link WAIT_RECENT_PULLS} pulls): its next
   * frame is due and has not arrived — the call may hold this tick's frame for it
   * (MediaClock.deferTick). A queue that ran dry long after the app's last message held audio sent
   * ahead (an utterance of a TTS burst): nothing more is coming, and holding the frame would only
   * send it up to the grace window late — an inter-packet interval outside 20 ± 5 ms at the end of
   * every utterance (issue 6: 1 852 such holds, all expired, in a 200-call burst run).
   */
  get waiting(): boolean {
    return this.lastPullAudio && this.isEmpty && this.pullsSinceAudio <= WAIT_RECENT_PULLS;
  }

  /**
   * Appends audio; what does not fit under the cap is dropped. `receivedAt` (any clock) is handed
   * back to `onFirstPull` when its first sample plays.
   * @returns samples accepted and dropped
   */
  enqueueAudio(samples: Int16Array, receivedAt = 0): { accepted: number; dropped: number } {
    const room = Math.max(0, this.options.capSamples - this.queued);
    const accepted = Math.min(room, samples.length);
    const catchUp = this.options.catchUp;
    if (catchUp && this.gap >= 0 && accepted > 0) {
      if (this.gap <= catchUp.maxGapSamples) {
        // Audio resumes after a short dry spell: the app was late by the silence played meanwhile.
        this.creditDrySpell(this.gap);
      } else if (this.streamingBeforeGap) {
        // A stall or a pause: told apart by how much audio comes at once (see the module comment).
        this.resumeGap = this.gap;
        this.resumeEnqueued = 0;
        this.resumePulls = 0;
      }
      this.gap = -1;
    }
    if (this.resumeGap >= 0) this.resumeEnqueued += accepted;
    if (catchUp) this.enqueuedSincePull += accepted;
    this.backlog.enqueued += accepted;
    this.longBacklog.enqueued += accepted;
    if (accepted > 0) {
      this.pullsSinceAudio = 0;
      this.items.push({
        kind: 'audio',
        samples: accepted < samples.length ? samples.subarray(0, accepted) : samples,
        offset: 0,
        receivedAt,
      });
      this.queued += accepted;
    }
    return { accepted, dropped: samples.length - accepted };
  }

  /**
   * Appends a checkpoint marker.
   * @returns `true` if the queue was empty: the checkpoint is reached at once (not queued)
   */
  enqueueCheckpoint(name: string): boolean {
    if (this.isEmpty) {
      this.lastPullAudio = false; // the app's utterance ended: no frame is awaited
      return true;
    }
    this.items.push({ kind: 'checkpoint', name });
    return false;
  }

  /** Appends a DTMF digit occupying `durationSamples` (tone + gap) of playout time. */
  enqueueDtmf(digit: string, durationSamples: number): void {
    this.items.push({ kind: 'dtmf', digit, remaining: durationSamples, started: false });
    this.queued += durationSamples;
  }

  /**
   * Discards everything queued.
   * @returns what was discarded: audio samples and checkpoint names (never to be acked)
   */
  clear(): { droppedSamples: number; droppedCheckpoints: string[] } {
    const droppedCheckpoints: string[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const it = this.items[i]!;
      if (it.kind === 'checkpoint') droppedCheckpoints.push(it.name);
    }
    const droppedSamples = this.queued;
    this.items = [];
    this.head = 0;
    this.queued = 0;
    this.lastPullAudio = false;
    this.endSession('clear');
    return { droppedSamples, droppedCheckpoints };
  }

  /**
   * The media clock gave up `ticks` ticks after a stall: nothing was pulled for them, so whatever
   * is queued now plays that much later — lateness to recover (or, in a dry spell, part of it).
   */
  skipped(ticks: number): void {
    if (!this.options.catchUp || ticks <= 0) return;
    const samples = ticks * this.options.frameSamples;
    const streaming = this.streaming;
    // Skipped ticks are ticks of the app's pace too: what arrived in them counts over more time.
    for (let i = 0; i < Math.min(ticks, PACE_PULLS); i++) this.pushPace(0);
    if (this.gap >= 0) {
      this.gap += samples; // a stall of ours, not a pause of the app
    } else if (
      this.queued > 0 &&
      (this.queued - this.lateness <= 4 * this.options.frameSamples || streaming)
    ) {
      // (a queue deeper than that and not fed at real-time pace was sent ahead: a few ticks late
      // do not make it late)
      this.addLateness(samples);
    }
  }

  /**
   * The app streams at real-time pace or faster, in several messages: {@link STALL_PACE} and
   * {@link STALL_ACTIVE_PULLS} over the pace ring (stall rule, skipped ticks, checkpoints).
   */
  private get streaming(): boolean {
    const n = this.options.frameSamples;
    return this.paceSum >= STALL_PACE * PACE_PULLS * n && this.paceActive >= STALL_ACTIVE_PULLS;
  }

  /** The cap on lateness, samples ({@link MAX_LATENESS_FRAMES}). */
  private get maxLateness(): number {
    return MAX_LATENESS_FRAMES * this.options.frameSamples;
  }

  /**
   * Takes the next 20 ms: writes queued audio into `frame` (which the caller zero-fills) and
   * reports checkpoints reached and DTMF digits starting. A DTMF item starts on a frame boundary.
   * The result is this queue's own object, valid until the next pull.
   * @param mayAccelerate asked only when catch-up would search this frame for a pitch period to
   *   remove (a silent frame needs no search and does not ask); false plays it as is (the lateness
   *   stays for a later pull) — see {@link CatchUpBudget}
   */
  pull(frame: Int16Array, mayAccelerate?: () => boolean): PullResult {
    // One result object per queue, reset on every pull (50 pulls per second per stream).
    const result = this.result;
    result.audioSamples = 0;
    result.checkpoints.length = 0;
    result.dtmf.length = 0;
    const n = this.options.frameSamples;
    const catchUp = this.options.catchUp;
    let p = 0;
    if (this.resumeGap >= 0) {
      if (this.resumeEnqueued >= STALL_REPAID * this.resumeGap) {
        this.creditDrySpell(this.resumeGap); // the app repaid the silence: it was late, not pausing
        this.resumeGap = -1;
      } else if (++this.resumePulls >= 2) {
        this.resumeGap = -1; // a new utterance after a pause
      }
    }
    // Catch-up: while lateness remains and the app is not sending ahead — a queue deeper than
    // the lateness by more than 4 frames and more than the lateness itself, filled faster than
    // real time, means the app sends ahead of time: the session ends. (Not by depth alone: a
    // real-time app's backlog over the lateness cap, or left by a stall no rule credited, would wipe
    // its whole lateness, and the delay would stay for good — the seconds of delay of disturbed
    // runs, issue 6.)
    if (
      this.lateness > 0 &&
      this.queued - this.lateness > Math.max(4 * n, this.lateness) &&
      this.paceSum + this.enqueuedSincePull > AHEAD_PACE * PACE_PULLS * n
    )
      this.endSession('ahead');
    const removable = Math.min(this.lateness, this.queued - n);
    if (catchUp && removable >= catchUp.minPeriod) {
      // Up to a whole frame may go when it is silence; speech loses one period at most — or, while
      // more than FAST_CATCH_UP_FRAMES are late, whole multiples of it up to a frame (NetEq's "fast
      // accelerate"), so a deep backlog is gone in about half the time at the same search cost.
      const fast = this.lateness > FAST_CATCH_UP_FRAMES * n;
      const extra = this.audioAhead(n + Math.min(Math.max(catchUp.maxPeriod, n), removable));
      if (extra > n) {
        // (a silent frame goes without a pitch search, so without asking the CPU budget)
        const removed = accelerateFrame(this.scratch!.subarray(0, extra), frame, {
          minPeriod: catchUp.minPeriod,
          maxPeriod: catchUp.maxPeriod,
          maxSilenceRemove: n,
          maxRemove: removable,
          ...(fast ? { multiplesUpTo: n } : {}),
          ...(this.lateness > DEEP_LATENESS_FRAMES * n ? { fallbackRemove: n } : {}),
          ...(mayAccelerate ? { maySearch: mayAccelerate } : {}),
          periodHint: this.pitch,
        });
        this.lateness -= removed;
        this.acceleratedSamples += removed;
        this.consumeAudio(n + removed, result);
        p = n;
        result.audioSamples = n;
      }
    }
    while (this.head < this.items.length) {
      const it = this.items[this.head]!;
      if (it.kind === 'checkpoint') {
        result.checkpoints.push(it.name);
        this.pop();
        continue;
      }
      if (p >= n) break;
      if (it.kind === 'audio') {
        if (it.offset === 0) this.options.onFirstPull?.(it.receivedAt);
        const take = Math.min(n - p, it.samples.length - it.offset);
        frame.set(it.samples.subarray(it.offset, it.offset + take), p);
        it.offset += take;
        p += take;
        result.audioSamples += take;
        this.queued -= take;
        if (it.offset >= it.samples.length) this.pop();
        continue;
      }
      // DTMF: occupies whole frames of silence; the leg sends the tone.
      if (!it.started) {
        if (p > 0) break;
        it.started = true;
        result.dtmf.push(it.digit);
      }
      const take = Math.min(n - p, it.remaining);
      it.remaining -= take;
      this.queued -= take;
      p += take;
      if (it.remaining <= 0) this.pop();
    }
    if (this.head === this.items.length) {
      // Drained (a real-time app's queue, every few ticks): reuse the array from the start.
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.lastPullAudio = result.audioSamples > 0;
    this.pullsSinceAudio++;
    if (catchUp) {
      this.pullsSinceAhead = this.queued - this.lateness > 4 * n ? 0 : this.pullsSinceAhead + 1;
      this.trackPace();
      this.trackGap(result, n, catchUp.maxGapSamples);
      this.trackBacklog(result, n, catchUp.minPeriod);
    }
    return result;
  }

  /** The app's pace over the last PACE_PULLS pulls, after a pull (stall rule, module comment). */
  private trackPace(): void {
    this.pushPace(this.enqueuedSincePull);
    this.enqueuedSincePull = 0;
  }

  /** Adds one tick's arrivals (samples) to the pace ring. */
  private pushPace(samples: number): void {
    const ring = this.paceRing;
    const old = ring[this.paceIndex]!;
    this.paceSum += samples - old;
    this.paceActive += (samples > 0 ? 1 : 0) - (old > 0 ? 1 : 0);
    ring[this.paceIndex] = samples;
    this.paceIndex = (this.paceIndex + 1) % PACE_PULLS;
  }

  /**
   * The queue ran dry at a checkpoint: did an utterance end (what follows is a pause), or is this
   * a real-time app that marks its stream as it goes (what follows may be a stall's repayment)? An
   * utterance was sent ahead — the queue stood more than four frames beyond the lateness within the
   * last PACE_PULLS pulls — or not streamed at all; a real-time app's queue holds its lateness and
   * jitter only.
   */
  private utteranceEnded(): boolean {
    return this.pullsSinceAhead <= PACE_PULLS || !this.streaming;
  }

  /** Standing-backlog window after a pull (see the module comment). */
  private trackBacklog(result: PullResult, n: number, minPeriod: number): void {
    const full = result.audioSamples >= n && result.dtmf.length === 0;
    this.trackLongBacklog(full, n);
    const w = this.backlog;
    if (full) {
      w.pulls++;
      if (this.queued < w.min) w.min = this.queued;
      if (this.queued > w.max) w.max = this.queued;
      if (w.pulls < BACKLOG_WINDOW) return;
      const played = BACKLOG_WINDOW * n;
      if (Math.abs(w.enqueued - played) <= played / 10 && w.max - w.min <= 2 * n && w.min >= minPeriod) {
        if (w.min > this.lateness) this.addLateness(w.min - this.lateness);
      }
    }
    w.pulls = 0;
    w.enqueued = 0;
    w.min = Infinity;
    w.max = 0;
  }

  /** Long (jitter-tolerant) standing-backlog window after a pull (see the module comment). */
  private trackLongBacklog(full: boolean, n: number): void {
    const w = this.longBacklog;
    if (full) {
      w.pulls++;
      if (this.queued < w.min) w.min = this.queued;
      const quarter = LONG_BACKLOG_WINDOW / 4;
      if (w.pulls % quarter === 0) {
        const got = w.enqueued - w.quarterFrom;
        if (got < 0.5 * quarter * n || got > 1.5 * quarter * n) w.steady = false;
        w.quarterFrom = w.enqueued;
      }
      if (w.pulls < LONG_BACKLOG_WINDOW) return;
      const played = LONG_BACKLOG_WINDOW * n;
      if (w.steady && Math.abs(w.enqueued - played) <= 0.15 * played && w.min - n > this.lateness)
        this.addLateness(w.min - n - this.lateness);
    }
    w.pulls = 0;
    w.enqueued = 0;
    w.quarterFrom = 0;
    w.min = Infinity;
    w.steady = true;
  }

  /**
   * Dry-spell bookkeeping after a pull: the silence played from the moment the queue ran dry is
   * what late audio will have to recover when it arrives.
   */
  private trackGap(result: PullResult, n: number, maxGap: number): void {
    if (result.dtmf.length > 0) {
      this.endSession('dtmf'); // what follows a digit is a pause, not lateness
    } else if (result.checkpoints.length > 0 && this.isEmpty && this.utteranceEnded()) {
      this.endSession('checkpoint');
    } else if (result.audioSamples > 0) {
      this.gap = this.isEmpty ? n - result.audioSamples : -1; // ran dry at or inside this frame?
      if (this.gap >= 0) this.streamingBeforeGap = this.streaming;
    } else if (this.gap >= 0) {
      this.gap += n;
      // Longer than a short gap: a stall or a pause. Lateness still owed from before is dropped
      // either way (a stall is credited in full when it is repaid; a pause must not speed up the
      // next utterance); past STALL_MAX_FRAMES it is a pause whatever follows.
      if (this.gap > maxGap && this.lateness > 0) this.endSession('pause', true);
      if (this.gap > STALL_MAX_FRAMES * n) this.endSession('pause');
    }
  }

  /** A dry spell of `samples` turned out to be the app's lateness: recover it. */
  private creditDrySpell(samples: number): void {
    this.addLateness(samples);
    this.drySpellSamples += samples;
  }

  /** Adds lateness up to the cap (what is over it is counted as given up). */
  private addLateness(samples: number): void {
    const room = this.maxLateness - this.lateness;
    this.forgoneSamples.cap += Math.max(0, samples - room);
    this.lateness += Math.min(samples, room);
  }

  /**
   * Ends the talk session: the lateness not yet recovered is given up (counted under `reason`).
   * @param keepGap true: only the lateness goes; the dry spell under way is still measured
   */
  private endSession(reason: ForgoneReason, keepGap = false): void {
    this.forgoneSamples[reason] += this.lateness;
    this.lateness = 0;
    if (keepGap) return;
    this.gap = -1;
    this.resumeGap = -1;
  }

  /**
   * Copies up to `want` samples of audio from the head of the queue into the scratch buffer without
   * consuming them, stopping at the first checkpoint or DTMF item.
   * @returns samples copied
   */
  private audioAhead(want: number): number {
    if (!this.scratch || this.scratch.length < want) this.scratch = new Int16Array(want);
    let got = 0;
    for (let i = this.head; i < this.items.length && got < want; i++) {
      const it = this.items[i]!;
      if (it.kind !== 'audio') break;
      const take = Math.min(want - got, it.samples.length - it.offset);
      this.scratch.set(it.samples.subarray(it.offset, it.offset + take), got);
      got += take;
    }
    return got;
  }

  /**
   * Moves past the head item and lets it go: a consumed frame must not stay reachable (at 50
   * items/s a stream kept up to 20 s of played audio alive until the next compaction — ~46 MB of
   * old-generation garbage at 100 echo calls, collected by 10–14 ms mark-compact pauses).
   */
  private pop(): void {
    this.items[this.head++] = undefined;
  }

  /** Consumes `count` samples of audio (all in audio items at the head: see {@link audioAhead}). */
  private consumeAudio(count: number, result: PullResult): void {
    while (count > 0) {
      const it = this.items[this.head]!;
      if (it.kind !== 'audio') throw new Error('playout: catch-up crossed a marker');
      if (it.offset === 0) this.options.onFirstPull?.(it.receivedAt);
      const take = Math.min(count, it.samples.length - it.offset);
      it.offset += take;
      this.queued -= take;
      count -= take;
      if (it.offset >= it.samples.length) this.pop();
    }
    // Checkpoints right after the consumed audio are reached with this frame.
    while (this.head < this.items.length && this.items[this.head]!.kind === 'checkpoint') {
      result.checkpoints.push((this.items[this.head] as { name: string }).name);
      this.pop();
    }
  }
}
