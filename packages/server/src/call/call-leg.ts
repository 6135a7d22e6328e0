/**
 * The seam between ingress (SIP/RTP, WebRTC, the simulated caller) and the call: every ingress
 * yields a {@link CallLeg}. The call never knows which kind it has (design.md "Layout").
 */
import type { CallCodec } from '../media/codec.js';

/** What a leg reports to its call. */
export interface CallLegSink {
  /**
   * One 20 ms frame of caller audio, in the leg's codec, on arrival (after the leg's own reorder
   * window). Missing audio is reported as silence frames so time advances evenly.
   * @param captureMs epoch ms of arrival
   * @param arrivalHr high-resolution arrival time (`performance.now()` ms) when the leg has one
   */
  onFrame(frame: Uint8Array, captureMs: number, arrivalHr?: number): void;
  /** A caller key press (RFC 4733 event start; retransmissions already removed). */
  onDtmf(digit: string, startMs: number): void;
  /** The far end hung up (SIP BYE, media timeout, end of simulated call). */
  onHangup(cause: string): void;
}

/** Extra facts about an outgoing frame, for recorders and statistics. */
export interface OutgoingFrameInfo {
  /** True if the frame carries queued playback (not just silence). */
  hasPlayback: boolean;
}

/** One party of a call, as the call sees it. */
export interface CallLeg {
  /** Codec of the leg's audio in both directions. */
  readonly codec: CallCodec;
  /** Connects the leg's events to its call; called once. */
  attach(sink: CallLegSink): void;
  /** Sends one 20 ms frame (leg codec) to the party; called once per media-clock tick. */
  sendFrame(frame: Uint8Array, info: OutgoingFrameInfo): void;
  /** Sends a DTMF digit (RFC 4733 where negotiated) lasting `durationMs`. */
  sendDtmf(digit: string, durationMs: number): void;
  /** Ends the leg from our side (SIP BYE, …). Idempotent. */
  hangup(cause: string): void;
}
