/**
 * The Plivo XML interpreter (protocol.md §1.1, §1.3): runs a document's elements one at a time on a
 * call, one handler per element. `<Redirect>` and transfer replace the running document (streams,
 * being call-scoped, survive); when the last element completes the call is hung up; the hangup URL
 * is called (signed, through the durable callback outbox) when the call ends.
 *
 * `<Speak>` uses eSpeak NG (media/tts.ts). Not yet: MP3 in `<Play>` (WAV, raw μ-law and L16 only).
 */
import {
  isHttpUrl,
  parseBooleanText,
  parsePositiveInteger,
  parseStreamElement,
  type XmlElement,
} from '@callstream/protocol';
import type { Runtime } from '../app.js';
import type { Call, CallInfo, OutboundSource } from '../call/call.js';
import type { Clock } from '../clock/clock.js';
import { resampleOnce } from '../media/resample.js';
import { readWav } from '../media/wav.js';
import { g711Decode } from '../media/g711.js';
import { USER_AGENT } from '../version.js';
import { fetchDocument, type DocumentSource, type FetchDocumentResult } from './fetch-document.js';

/** The application a call runs (answer URL etc., §1.1). */
export interface XmlApplication {
  answer: DocumentSource;
  fallback?: DocumentSource | null;
  hangup?: DocumentSource | null;
  /** Extra request parameters for every fetch (CallerName, `SIP-H-X-*` headers of the INVITE). */
  params?: Record<string, string>;
}

/** The parameters every fetch of a call's documents carries (protocol.md §1.1). */
export function callParams(info: CallInfo, extra: Record<string, string> = {}): Record<string, string> {
  const p: Record<string, string> = {
    CallUUID: info.callId,
    From: info.from,
    To: info.to,
    Direction: info.direction,
  };
  if (info.direction === 'outbound')
    Object.assign(p, { ALegUUID: info.callId, ALegRequestUUID: info.callId });
  return { ...extra, ...p };
}

/**
 * Fetches a call's answer document before the call exists (SIP ingress answers the INVITE only
 * once it has a document, as Plivo does): answer URL, then the fallback URL, `CallStatus=ringing`.
 */
export function fetchAnswerDocument(
  runtime: Runtime,
  info: CallInfo,
  app: XmlApplication,
): Promise<FetchDocumentResult> {
  const c = runtime.config;
  return fetchDocument(
    app.answer,
    app.fallback ?? null,
    { ...callParams(info, app.params), CallStatus: 'ringing' },
    {
      http: runtime.http,
      authToken: c.authToken,
      userAgent: USER_AGENT,
      timeoutMs: c.xml.timeoutMs,
      maxBytes: c.xml.maxBytes,
    },
  );
}

class Interrupted extends Error {}

/** Runs Plivo XML on one call. */
export class XmlSession {
  /** Elements run, in order (names), for tests and the summary. */
  readonly executed: string[] = [];
  private replacement: XmlElement[] | null = null;
  private interrupt: (() => void) | null = null;
  private readonly baseParams: Record<string, string>;

  constructor(
    private readonly runtime: Runtime,
    private readonly call: Call,
    private readonly app: XmlApplication,
  ) {
    this.baseParams = callParams(call.info, app.params);
    void call.done.then((cause) => {
      this.interrupt?.(); // one listener for the whole session: a hangup ends the running element
      this.callHangupUrl(cause);
    });
  }

  private fetch(source: DocumentSource, fallback: DocumentSource | null, status: string) {
    const c = this.runtime.config;
    return fetchDocument(
      source,
      fallback,
      { ...this.baseParams, CallStatus: status },
      {
        http: this.runtime.http,
        authToken: c.authToken,
        userAgent: USER_AGENT,
        timeoutMs: c.xml.timeoutMs,
        maxBytes: c.xml.maxBytes,
      },
    );
  }

  /**
   * Runs the call flow in the background: registers the session in `runtime.xmlSessions` (transfer
   * finds it there) until it ends; an unexpected failure is logged and hangs the call up with
   * `INTERNAL_ERROR` instead of surfacing as an unhandled rejection.
   */
  start(prefetched?: XmlElement[]): void {
    const id = this.call.info.callId;
    this.runtime.xmlSessions.set(id, this);
    this.run(prefetched)
      .catch((err: unknown) => {
        this.runtime.logger.error({ err, callId: id }, 'XML call flow failed');
        this.call.debugLog.add('error', 'internal_error', `call flow failed: ${(err as Error).message}`);
        this.call.hangup('INTERNAL_ERROR');
      })
      .finally(() => {
        if (this.runtime.xmlSessions.get(id) === this) this.runtime.xmlSessions.delete(id);
      });
  }

  /**
   * Fetches the answer URL (unless `prefetched` is given) and runs the document; resolves when
   * the call has ended.
   */
  async run(prefetched?: XmlElement[]): Promise<void> {
    const doc: FetchDocumentResult = prefetched
      ? { ok: true, elements: prefetched, url: this.app.answer.url }
      : await this.fetch(
          this.app.answer,
          this.app.fallback ?? null,
          this.call.info.direction === 'inbound' ? 'ringing' : 'in-progress',
        );
    if (!doc.ok) {
      for (const e of doc.errors) this.call.debugLog.add('error', 'answer_url_failed', e);
      this.call.hangup('ANSWER_URL_FAILED');
      return;
    }
    let elements: XmlElement[] = doc.elements;
    for (;;) {
      await this.execute(elements);
      if (this.replacement && !this.call.ended) {
        elements = this.replacement;
        this.replacement = null;
        continue;
      }
      break;
    }
    if (!this.call.ended) this.call.hangup('NORMAL_CLEARING'); // the document ran out (§1.1)
  }

  /**
   * Replaces the running document with the one at `source` (transfer, §2.4): the current element is
   * interrupted; streams continue. Resolves false (and hangs up) if it cannot be fetched.
   */
  async transfer(source: DocumentSource): Promise<boolean> {
    const doc = await this.fetch(source, null, 'in-progress');
    if (!doc.ok) {
      for (const e of doc.errors) this.call.debugLog.add('error', 'transfer_failed', e);
      this.call.hangup('TRANSFER_FAILED');
      return false;
    }
    this.replacement = doc.elements;
    this.interrupt?.();
    return true;
  }

  private async execute(elements: XmlElement[]): Promise<void> {
    for (const el of elements) {
      if (this.call.ended || this.replacement) return;
      this.executed.push(el.name);
      try {
        await this.element(el);
      } catch (e) {
        if (e instanceof Interrupted) return;
        this.call.debugLog.add('error', 'element_failed', `<${el.name}> failed: ${(e as Error).message}`);
      }
    }
  }

  /** Waits for `p`, or rejects with Interrupted on transfer or hangup. */
  private interruptible<T>(p: Promise<T>, onInterrupt?: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const interrupt = () => {
        onInterrupt?.();
        reject(new Interrupted());
      };
      if (this.call.ended) return interrupt();
      this.interrupt = interrupt;
      // Clear only our own: this runs a microtask after `p` settles, when the caller may already
      // have entered the next interruptible wait (e.g. <Play> playing right after its download).
      p.then(resolve, reject).finally(() => {
        if (this.interrupt === interrupt) this.interrupt = null;
      });
    });
  }

  /** Waits `ms`; a transfer or hangup ends the wait and cancels its timer. */
  private sleep(ms: number): Promise<void> {
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const done = new Promise<void>((r) => (timer = this.runtime.clock.setTimeout(r, ms)));
    return this.interruptible(done, () => this.runtime.clock.clearTimeout(timer));
  }

  private warn(code: string, message: string): void {
    this.call.debugLog.add('warning', code, message);
  }

  private async element(el: XmlElement): Promise<void> {
    switch (el.name) {
      case 'Stream': {
        const r = parseStreamElement(el.attributes, el.text, { strict: this.runtime.config.strict });
        const stream = this.call.startStream(r.params, r.rejection);
        for (const w of r.warnings) stream.debugLog.add('warning', w.code, w.message);
        if (r.params.keepCallAlive && !stream.ended) await this.interruptible(stream.done);
        return;
      }
      case 'Wait': {
        const length = el.attributes.length === undefined ? 1 : parsePositiveInteger(el.attributes.length);
        for (const a of ['silence', 'minSilence', 'beep'])
          if (a in el.attributes) this.warn('attribute_ignored', `<Wait ${a}> is not supported; ignored`);
        if (length === null) {
          this.warn(
            'attribute_invalid',
            `<Wait length="${el.attributes.length}"> must be a positive integer; using 1`,
          );
        }
        await this.sleep((length ?? 1) * 1000);
        return;
      }
      case 'Hangup': {
        const reason = el.attributes.reason?.toLowerCase();
        const cause =
          reason === 'busy' ? 'USER_BUSY' : reason === 'rejected' ? 'CALL_REJECTED' : 'NORMAL_CLEARING';
        const schedule =
          el.attributes.schedule === undefined ? null : parsePositiveInteger(el.attributes.schedule);
        if (schedule !== null) {
          this.runtime.clock.setTimeout(() => this.call.hangup(cause), schedule * 1000);
          return;
        }
        this.call.hangup(cause);
        return;
      }
      case 'Redirect': {
        const url = el.text.trim();
        const method = (el.attributes.method ?? 'POST').toUpperCase() === 'GET' ? 'GET' : 'POST';
        if (!isHttpUrl(url)) {
          this.call.debugLog.add(
            'error',
            'redirect_failed',
            `<Redirect> needs an absolute http(s) URL, got "${url.slice(0, 200)}"`,
          );
          this.call.hangup('REDIRECT_FAILED');
          return;
        }
        const doc = await this.interruptible(this.fetch({ url, method }, null, 'in-progress'));
        if (!doc.ok) {
          for (const e of doc.errors) this.call.debugLog.add('error', 'redirect_failed', e);
          this.call.hangup('REDIRECT_FAILED');
          return;
        }
        this.replacement = doc.elements;
        return;
      }
      case 'DTMF': {
        const digits = el.text.trim();
        if (!/^[0-9*#A-Da-dwW]+$/.test(digits)) {
          this.warn(
            'dtmf_invalid_char',
            `<DTMF>${digits.slice(0, 50)}</DTMF> has characters other than 0-9 * # A-D w W; skipped`,
          );
          return;
        }
        const async =
          el.attributes.async === undefined ? true : (parseBooleanText(el.attributes.async) ?? true);
        const sent = this.sendDigits(digits);
        await this.interruptible(async ? sent.first : sent.all);
        return;
      }
      case 'Play':
        return this.play(el);
      case 'Speak':
        return this.speak(el);
      default:
        this.warn('element_skipped', `<${el.name}> is not supported; skipped`);
    }
  }

  /** Sends digits with the configured tone/gap; `w` pauses 0.5 s, `W` 1 s. */
  private sendDigits(digits: string): { first: Promise<void>; all: Promise<void> } {
    const { toneMs, gapMs } = this.runtime.config.dtmf;
    let resolveFirst!: () => void;
    const first = new Promise<void>((r) => (resolveFirst = r));
    const all = (async () => {
      for (const d of digits) {
        if (this.call.ended) break;
        if (d === 'w' || d === 'W') {
          await new Promise<void>((r) => this.runtime.clock.setTimeout(r, d === 'w' ? 500 : 1000));
          continue;
        }
        this.call.leg.sendDtmf(d.toUpperCase(), toneMs);
        resolveFirst();
        await new Promise<void>((r) => this.runtime.clock.setTimeout(r, toneMs + gapMs));
      }
      resolveFirst();
    })();
    return { first, all };
  }

  private loopCount(el: XmlElement): number {
    const raw = el.attributes.loop;
    const n = raw === undefined ? 1 : Number(raw);
    if (Number.isInteger(n) && n >= 0) return n;
    this.warn('attribute_invalid', `<${el.name} loop="${raw}"> must be a non-negative integer; using 1`);
    return 1;
  }

  /** `<Speak>`: text to speech (eSpeak NG on a worker thread), then played like `<Play>`. */
  private async speak(el: XmlElement): Promise<void> {
    const voiceAttr = (el.attributes.voice ?? 'WOMAN').toUpperCase();
    const voice = voiceAttr === 'MAN' ? 'MAN' : 'WOMAN';
    if (voiceAttr !== 'MAN' && voiceAttr !== 'WOMAN')
      this.warn(
        'attribute_ignored',
        `<Speak voice="${el.attributes.voice}"> is not WOMAN or MAN; using WOMAN`,
      );
    const language = el.attributes.language ?? 'en-US';
    let samples: Int16Array;
    try {
      samples = await this.interruptible(
        this.runtime.speech.synthesize(el.text, { language, voice }, this.call.leg.codec.sampleRate),
      );
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      this.warn('speak_failed', `<Speak>: ${(e as Error).message}; skipped`);
      return;
    }
    await this.playSamples(samples, this.loopCount(el));
  }

  /** `<Play>`: WAV (any rate), or raw μ-law / L16 by Content-Type, from an http(s) URL. */
  private async play(el: XmlElement): Promise<void> {
    const url = el.text.trim();
    const loop = this.loopCount(el);
    if (!isHttpUrl(url)) {
      this.warn('play_failed', `<Play> needs an http(s) URL, got "${url.slice(0, 200)}"; skipped`);
      return;
    }
    let samples: Int16Array;
    try {
      const { timeoutMs, maxPlayBytes } = this.runtime.config.xml;
      const res = await this.interruptible(
        this.runtime.http.exchange({
          url,
          method: 'GET',
          headers: { 'User-Agent': USER_AGENT },
          timeoutMs,
          maxBodyBytes: maxPlayBytes,
          keepBody: true,
        }),
      );
      if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
      if (res.overLimit) throw new Error(`file larger than ${maxPlayBytes} bytes (xml.maxPlayBytes)`);
      const audio = decodePlayAudio(res.body, res.contentType);
      const rate = this.call.leg.codec.sampleRate;
      samples =
        audio.sampleRate === rate ? audio.samples : resampleOnce(audio.samples, audio.sampleRate, rate);
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      this.warn('play_failed', `<Play> ${url}: ${(e as Error).message}; skipped`);
      return;
    }
    await this.playSamples(samples, loop);
  }

  /**
   * Plays PCM at the call rate into the outbound track `loop` times (0 = until interrupted).
   * Once the last sample is out the source stays finished: it is detached only after `done`
   * resolves (a microtask later), and ticks caught up after a stall run in one synchronous turn —
   * a further pull must not start the prompt again.
   */
  private async playSamples(samples: Int16Array, loop: number): Promise<void> {
    let offset = 0;
    let played = 0;
    let finished = false;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const finish = () => {
      finished = true;
      resolveDone();
    };
    const source: OutboundSource = {
      pull(frame) {
        if (finished) return false;
        if (samples.length === 0) {
          finish();
          return false;
        }
        let p = 0;
        while (p < frame.length) {
          if (offset >= samples.length) {
            played++;
            offset = 0;
            if (loop !== 0 && played >= loop) break;
          }
          const n = Math.min(frame.length - p, samples.length - offset);
          frame.set(samples.subarray(offset, offset + n), p);
          p += n;
          offset += n;
        }
        if (p < frame.length || (loop !== 0 && played >= loop)) finish();
        return p > 0;
      },
    };
    this.call.setOutboundSource(source);
    try {
      await this.interruptible(done);
    } finally {
      this.call.setOutboundSource(null);
    }
  }

  private callHangupUrl(cause: string): void {
    const hangup = this.app.hangup;
    if (!hangup) return;
    const end = this.call.endedAt ?? this.runtime.clock.now();
    const duration = Math.max(0, Math.round((end - this.call.startedAt) / 1000));
    this.runtime.callbacks.send({
      key: `call:${this.call.info.callId}`,
      url: hangup.url,
      method: hangup.method,
      params: {
        ...this.baseParams,
        CallStatus: 'completed',
        HangupCause: cause,
        Duration: String(duration),
        BillDuration: String(duration),
      },
    });
  }
}

/**
 * Decodes `<Play>` audio: a RIFF/WAVE file whatever the Content-Type, else raw audio named by the
 * Content-Type — `audio/basic` / `audio/x-mulaw` / `audio/pcmu` (μ-law 8 kHz), `audio/x-alaw` /
 * `audio/pcma`, `audio/x-l16;rate=N` (little-endian, as on our WebSocket) or `audio/l16;rate=N`
 * (network order, RFC 2586).
 * @throws Error naming the unsupported type (MP3 and others)
 */
export function decodePlayAudio(
  body: Buffer,
  contentType: string,
): { samples: Int16Array; sampleRate: number } {
  if (
    body.length >= 12 &&
    body.toString('latin1', 0, 4) === 'RIFF' &&
    body.toString('latin1', 8, 12) === 'WAVE'
  ) {
    const wav = readWav(body);
    return { samples: wav.samples, sampleRate: wav.sampleRate };
  }
  const type = contentType.toLowerCase();
  const rate = Number(/rate=(\d+)/.exec(type)?.[1] ?? 8000);
  if (/^audio\/(basic|x-mulaw|mulaw|pcmu)\b/.test(type))
    return { samples: g711Decode('mulaw', body), sampleRate: 8000 };
  if (/^audio\/(x-alaw|alaw|pcma)\b/.test(type))
    return { samples: g711Decode('alaw', body), sampleRate: 8000 };
  if (/^audio\/(x-l16|l16)\b/.test(type)) {
    if (!(rate >= 8000 && rate <= 48000)) throw new Error(`L16 rate ${rate} is outside 8000-48000 Hz`);
    const n = body.length >> 1;
    const samples = new Int16Array(n);
    const bigEndian = type.startsWith('audio/l16');
    for (let i = 0; i < n; i++) samples[i] = bigEndian ? body.readInt16BE(2 * i) : body.readInt16LE(2 * i);
    return { samples, sampleRate: rate };
  }
  throw new Error(
    `unsupported audio (Content-Type "${contentType || 'none'}"; WAV, μ-law, A-law and L16 are supported)`,
  );
}
