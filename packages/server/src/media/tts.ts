/**
 * Text to speech for `<Speak>` (protocol.md §1.3): eSpeak NG compiled to WebAssembly (npm
 * `espeak-ng`, so `npm install` alone is enough) on a worker thread, results resampled to the call
 * rate and kept in a small LRU cache (prompts repeat). Plivo's `voice` (`WOMAN`/`MAN`) maps to the
 * eSpeak variants `+f3`/`+m3`; `language` (`en-US`, `fr-FR`, …) to the eSpeak voice of that language.
 */
import { Worker } from 'node:worker_threads';
import { readWav } from './wav.js';
import { resampleOnce } from './resample.js';

/** What to say and how. */
export interface SpeakOptions {
  /** BCP 47 language tag as Plivo writes it (`en-US`). */
  language: string;
  voice: 'WOMAN' | 'MAN';
  /** Words per minute (eSpeak default 175; 160 sounds natural on phones). */
  wordsPerMinute?: number;
}

/** A synthesis failure (unknown language, timeout, worker crash). */
export class SpeechError extends Error {
  override name = 'SpeechError';
}

/** The eSpeak voice name for a Plivo language and voice; null if the language is not known. */
export function espeakVoice(language: string, voice: 'WOMAN' | 'MAN'): string | null {
  const tag = language.trim().toLowerCase().replace('_', '-');
  if (!/^[a-z]{2,3}(-[a-z0-9]{2,8})*$/.test(tag)) return null;
  const [lang, region] = tag.split('-');
  // eSpeak names: regional English/Portuguese/Spanish variants; otherwise the bare language.
  const regional: Record<string, string> = {
    'en-us': 'en-us',
    'en-gb': 'en-gb',
    'en-au': 'en-us',
    'en-in': 'en-gb',
    'pt-br': 'pt-br',
    'es-mx': 'es-419',
    'es-us': 'es-419',
    'fr-ca': 'fr',
  };
  const base = regional[`${lang}-${region}`] ?? lang!;
  return `${base}${voice === 'MAN' ? '+m3' : '+f3'}`;
}

/** Synthesizes speech on a worker thread. One instance per process. */
export class SpeechSynthesizer {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (wav: Uint8Array) => void; reject: (e: Error) => void }
  >();
  private readonly cache = new Map<string, Int16Array>();

  constructor(private readonly options: { cacheEntries?: number; timeoutMs?: number } = {}) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./tts-worker.mjs', import.meta.url));
    w.unref();
    w.on('message', (m: { id: number; wav?: Uint8Array; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.wav) p.resolve(m.wav);
      else p.reject(new SpeechError(m.error ?? 'speech synthesis failed'));
    });
    const fail = (err: Error) => {
      for (const p of this.pending.values())
        p.reject(new SpeechError(`speech worker failed: ${err.message}`));
      this.pending.clear();
      this.worker = null;
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  /**
   * Speech for `text` as 16-bit PCM at `sampleRate` Hz.
   * @throws SpeechError for an unknown language, an empty text, a timeout (default 10 s) or an engine failure
   */
  async synthesize(text: string, options: SpeakOptions, sampleRate: number): Promise<Int16Array> {
    const clean = text.replace(/\s+/g, ' ').trim();
    if (!clean) throw new SpeechError('nothing to say: the text is empty');
    const voice = espeakVoice(options.language, options.voice);
    if (!voice) throw new SpeechError(`language "${options.language}" is not a language tag`);
    const rate = options.wordsPerMinute ?? 160;
    const key = `${voice}|${rate}|${sampleRate}|${clean}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // LRU: move to the end
      this.cache.set(key, hit);
      return hit;
    }
    const id = this.nextId++;
    const worker = this.ensureWorker();
    const wavBytes = await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SpeechError('speech synthesis timed out'));
      }, this.options.timeoutMs ?? 10_000);
      this.pending.set(id, {
        resolve: (w) => {
          clearTimeout(timer);
          resolve(w);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      worker.postMessage({ id, text: clean, voice, rate });
    });
    const wav = readWav(Buffer.from(wavBytes.buffer, wavBytes.byteOffset, wavBytes.byteLength));
    const pcm = resampleOnce(wav.samples, wav.sampleRate, sampleRate);
    this.cache.set(key, pcm);
    while (this.cache.size > (this.options.cacheEntries ?? 64))
      this.cache.delete(this.cache.keys().next().value!);
    return pcm;
  }

  /** Stops the worker; pending requests are rejected. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
