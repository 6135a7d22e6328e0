/**
 * A SIP call leg: one INVITE dialog (sip.js core session) and its RTP session, as the call sees
 * it ({@link CallLeg}). Handles BYE from either side, re-INVITE (hold/unhold; a codec change the
 * call cannot follow is refused with 488 and the old session stays, RFC 3264 §8), ACK timeout
 * (BYE, RFC 3261 §13.3.1.4) and RTP inactivity (BYE, cause `MEDIA_TIMEOUT`).
 */
import type { Core } from 'sip.js';
import type { CallCodec } from '../../media/codec.js';
import type { CallLeg, CallLegSink, OutgoingFrameInfo } from '../../call/call-leg.js';
import type { RtpSession } from '../rtp/rtp-session.js';
import { answerOffer, makeOffer, type LocalMedia } from './sdp.js';

type Session = Core.Session;

/** What a leg tells its server. */
export interface SipLegEvents {
  /** The leg is over (either side); release dialog state. */
  onClosed(leg: SipLeg): void;
  /** A note for the call's debug log. */
  onNote(level: 'info' | 'warning', code: string, message: string): void;
}

/** A connected SIP call, inbound (we answered) or outbound (we dialled). */
export class SipLeg implements CallLeg {
  private sink: CallLegSink | null = null;
  private ended = false;

  constructor(
    readonly codec: CallCodec,
    private readonly session: Session,
    readonly rtp: RtpSession,
    private readonly local: LocalMedia,
    private readonly events: SipLegEvents,
  ) {
    session.delegate = {
      onBye: (request) => {
        request.accept();
        this.end('NORMAL_CLEARING', true);
      },
      onAckTimeout: () => {
        this.events.onNote('warning', 'ack_timeout', 'no ACK for our 200 OK within 32 s; sending BYE');
        this.bye();
        this.end('ACK_TIMEOUT', true);
      },
      onInvite: (request) => this.onReInvite(request),
      onInfo: (request) => request.accept(),
    };
  }

  /** SIP Call-ID of the dialog. */
  get callId(): string {
    return this.session.callId;
  }

  attach(sink: CallLegSink): void {
    this.sink = sink;
  }

  /** RTP session events are routed here by the server. */
  frame(frame: Uint8Array, at: number, arrivalHr: number): void {
    this.sink?.onFrame(frame, at, arrivalHr);
  }

  dtmf(digit: string, at: number): void {
    this.sink?.onDtmf(digit, at);
  }

  /** RTP inactivity: hang up from our side with `MEDIA_TIMEOUT`. */
  mediaTimeout(): void {
    if (this.ended) return;
    this.events.onNote('warning', 'media_timeout', 'no RTP from the caller; hanging up');
    this.bye();
    this.end('MEDIA_TIMEOUT', true);
  }

  sendFrame(frame: Uint8Array, _info: OutgoingFrameInfo): void {
    if (!this.ended) this.rtp.sendFrame(frame);
  }

  sendDtmf(digit: string, durationMs: number): void {
    if (this.ended) return;
    try {
      if (!this.rtp.sendDtmf(digit, durationMs))
        this.events.onNote(
          'warning',
          'dtmf_not_negotiated',
          `digit ${digit} not sent: the caller did not offer telephone-event`,
        );
    } catch (e) {
      this.events.onNote('warning', 'dtmf_invalid', (e as Error).message);
    }
  }

  /** Our side ends the call: BYE (idempotent). */
  hangup(cause: string): void {
    if (this.ended) return;
    this.bye();
    this.end(cause, false);
  }

  private bye(): void {
    try {
      this.session.bye();
    } catch {
      // the dialog is already gone (e.g. terminated by the peer at the same moment)
    }
  }

  private end(cause: string, notifyCall: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.rtp.close();
    this.events.onClosed(this);
    if (notifyCall) this.sink?.onHangup(cause);
  }

  private onReInvite(request: Core.IncomingInviteRequest): void {
    const offer = request.message.body;
    if (!offer) {
      // Offer-less re-INVITE: our current SDP is the offer in the 200; the answer comes in the ACK.
      this.local.sessionVersion++;
      const ours = makeOffer(this.local, [this.codec.name as 'PCMU' | 'PCMA']);
      request.accept({
        statusCode: 200,
        body: { contentDisposition: 'session', contentType: 'application/sdp', content: ours },
      });
      return;
    }
    this.local.sessionVersion++;
    const r = answerOffer(offer, this.local, this.codec.name as 'PCMU' | 'PCMA');
    if (!r.ok) {
      this.local.sessionVersion--;
      this.events.onNote('warning', 'reinvite_refused', `re-INVITE refused (${r.status}): ${r.reason}`);
      request.reject({
        statusCode: r.status,
        extraHeaders: [`Warning: 304 callstream "${r.reason.replace(/"/g, "'")}"`],
      });
      return;
    }
    this.rtp.setMedia(r.media);
    this.events.onNote('info', 're_invite', `session updated: direction ${r.media.direction}`);
    request.accept({
      statusCode: 200,
      body: { contentDisposition: 'session', contentType: 'application/sdp', content: r.sdp },
    });
  }
}
