/**
 * A call leg driven by the test: inject caller frames and DTMF by hand, inspect every frame and
 * digit the call sent.
 */
import type { CallLeg, CallLegSink, OutgoingFrameInfo } from '../call/call-leg.js';
import { PCMU, type CallCodec } from '../media/codec.js';
import { g711Decode } from '../media/g711.js';

/** A manually driven {@link CallLeg}. */
export class TestLeg implements CallLeg {
  readonly sent: Array<{ frame: Uint8Array; info: OutgoingFrameInfo }> = [];
  readonly dtmf: Array<{ digit: string; durationMs: number; frameIndex: number }> = [];
  hungUp: string | null = null;
  private sink: CallLegSink | null = null;

  constructor(readonly codec: CallCodec = PCMU) {}

  attach(sink: CallLegSink): void {
    this.sink = sink;
  }
  /** Injects one caller frame. */
  frame(bytes: Uint8Array, captureMs: number): void {
    this.sink?.onFrame(bytes, captureMs);
  }
  /** Injects a caller key press. */
  press(digit: string, ms: number): void {
    this.sink?.onDtmf(digit, ms);
  }
  /** Simulates the far end hanging up. */
  farHangup(): void {
    this.sink?.onHangup('NORMAL_CLEARING');
  }
  sendFrame(frame: Uint8Array, info: OutgoingFrameInfo): void {
    this.sent.push({ frame: frame.slice(), info });
  }
  sendDtmf(digit: string, durationMs: number): void {
    this.dtmf.push({ digit, durationMs, frameIndex: this.sent.length });
  }
  hangup(cause: string): void {
    this.hungUp = cause;
  }
  /** Sent frames decoded (μ-law legs), concatenated. */
  sentPcm(from = 0, to = this.sent.length): Int16Array {
    const frames = this.sent.slice(from, to).map((s) => g711Decode('mulaw', s.frame));
    const out = new Int16Array(frames.reduce((n, f) => n + f.length, 0));
    let o = 0;
    for (const f of frames) {
      out.set(f, o);
      o += f.length;
    }
    return out;
  }
}
