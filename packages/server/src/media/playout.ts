/**
 * The playout queue of one bidirectional stream (protocol.md §3.6): a FIFO of audio, DTMF and
 * checkpoint markers drained one 20 ms frame per media-clock tick.
 *
 * Policy when full: audio beyond `capSamples` (40 s by default) is rejected — the rest of the
 * message and later messages — and reported to the caller of {@link enqueueAudio}; checkpoints
 * and DTMF are always queued. `clear` acts at once. Pure: no timers, no I/O.
 */

type Item =
  | { kind: 'audio'; samples: Int16Array; offset: number; receivedAt: number }
  | { kind: 'checkpoint'; name: string }
  | { kind: 'dtmf'; digit: string; remaining: number; started: boolean };

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
}

/** FIFO playout with checkpoints; see the module comment for the policy. */
export class PlayoutQueue {
  private items: Item[] = [];
  private head = 0;
  private queued = 0;

  constructor(private readonly options: PlayoutQueueOptions) {}

  /** Queued audio and DTMF time, samples. */
  get queuedSamples(): number {
    return this.queued;
  }

  /** True when nothing (audio, DTMF or checkpoint) is queued. */
  get isEmpty(): boolean {
    return this.head >= this.items.length;
  }

  /**
   * Appends audio; what does not fit under the cap is dropped. `receivedAt` (any clock) is handed
   * back to `onFirstPull` when its first sample plays.
   * @returns samples accepted and dropped
   */
  enqueueAudio(samples: Int16Array, receivedAt = 0): { accepted: number; dropped: number } {
    const room = Math.max(0, this.options.capSamples - this.queued);
    const accepted = Math.min(room, samples.length);
    if (accepted > 0) {
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
    if (this.isEmpty) return true;
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
    return { droppedSamples, droppedCheckpoints };
  }

  /**
   * Takes the next 20 ms: writes queued audio into `frame` (which the caller zero-fills) and
   * reports checkpoints reached and DTMF digits starting. A DTMF item starts on a frame boundary.
   */
  pull(frame: Int16Array): PullResult {
    const result: PullResult = { audioSamples: 0, checkpoints: [], dtmf: [] };
    const n = this.options.frameSamples;
    let p = 0;
    while (this.head < this.items.length) {
      const it = this.items[this.head]!;
      if (it.kind === 'checkpoint') {
        result.checkpoints.push(it.name);
        this.head++;
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
        if (it.offset >= it.samples.length) this.head++;
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
      if (it.remaining <= 0) this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return result;
  }
}
