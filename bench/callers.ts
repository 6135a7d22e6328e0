/**
 * The benchmark's callers (their own process): N concurrent SIP calls over UDP on loopback with the
 * shipped {@link TestSipPeer}, ramped up at a bounded rate; each sends the committed speech as μ-law
 * RTP paced at 20 ms (one shared pacer for all calls, `--pacer-ms`; each call's frame clock at its
 * own phase, `--phase`) for S seconds, then hangs up. Every RTP packet the server sends back is
 * measured on arrival: loss (sequence gaps), inter-packet interval, whether it carries audio,
 * whether that audio is our own speech (echo) and then how long after we sent that frame it came
 * back (the echo round trip through server and app, on this process's one clock), and the arrival
 * time of audio (burst: audio after a clear). Prints one JSON object on stdout.
 *
 * Usage: `tsx bench/callers.ts --target 127.0.0.1:5060 --calls N --duration S [--rate 20]
 * [--pacer-ms 5] [--phase random|answer]`
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TestSipPeer, type PeerCall } from '../packages/server/src/testing/index.js';
import { readWav } from '../packages/server/src/media/wav.js';
import { g711Encode } from '../packages/server/src/media/g711.js';
import { LatencyHistogram } from '../packages/server/src/metrics/latency.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: '127.0.0.1:5060' },
    calls: { type: 'string', default: '10' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '20' },
    user: { type: 'string', default: 'bench' },
    /** Keep the arrival time of every audio packet (burst mode's audio-after-clear check). */
    arrivals: { type: 'boolean', default: false },
    /** Caller numbers are 1000 + index from here on (warm-up calls use their own numbers). */
    'first-index': { type: 'string', default: '0' },
    /**
     * Period of the shared pacer, ms (default 5). A call's frame goes out at the first pacer run
     * after its due time: send jitter of 0…period ms, and the calls leave in batches — as a media
     * gateway or SBC that carries many calls sends them, on its own ptime timer (FreeSWITCH,
     * Asterisk). `1` comes closer to phones on independent clocks: measured at 200 echo calls, the
     * server then needed 87 % of a core against 78 % at 5 ms, on the same host (fewer packets per
     * wake-up of its event loop), and playAudio→RTP p99 45 vs 35 ms.
     */
    'pacer-ms': { type: 'string', default: '5' },
    /**
     * When each call's 20 ms frame clock starts: `random` (default) — 0–20 ms after its 200 OK, from
     * the call's index (the same in every run), as phones and gateways start their media clocks
     * independently; `answer` — at the 200 OK. With `answer` and the ramp's 50 ms between calls,
     * every call's frames were due at one of two phases of the 20 ms cycle (50 mod 20 = 10), ± the
     * SIP set-up time: the server saw its apps' replies arrive in two clusters.
     */
    phase: { type: 'string', default: 'random' },
  },
});
const [host, portText] = values.target.split(':');
const target = { host: host!, port: Number(portText) };
const N = Number(values.calls);
const durationMs = Number(values.duration) * 1000;
const rate = Number(values.rate);
const FIRST_INDEX = Number(values['first-index']);
const PACER_MS = Number(values['pacer-ms']);
if (!(PACER_MS >= 1 && PACER_MS <= 20)) throw new Error(`--pacer-ms must be 1–20, got ${values['pacer-ms']}`);
if (values.phase !== 'random' && values.phase !== 'answer')
  throw new Error(`--phase must be random or answer, got ${values.phase}`);
/** Offset of call `index`'s frame clock after its 200 OK, ms in [0, 20) (Knuth's multiplicative hash). */
const phaseOffsetMs = (index: number): number =>
  values.phase === 'random' ? (((index * 2654435761) >>> 0) / 2 ** 32) * 20 : 0;

const speech = g711Encode(
  'mulaw',
  readWav(readFileSync(new URL('../fixtures/speech-8k.wav', import.meta.url))).samples,
);
const FRAMES = Math.floor(speech.length / 160);

/**
 * A μ-law frame as a lookup key. 0x7F (-0) becomes 0xFF (+0): the server plays audio from linear
 * PCM, and encoding a decoded -0 gives +0, so an echoed frame can differ from ours only there.
 */
function frameKey(payload: Uint8Array): string {
  if (keyScratch.length < payload.length) keyScratch = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) keyScratch[i] = payload[i] === 0x7f ? 0xff : payload[i]!;
  return keyScratch.toString('latin1', 0, payload.length); // native; the callers share the cores
}
let keyScratch = Buffer.alloc(160);
/** Our own frames by content → index in the fixture (-1: the content occurs more than once). */
const ownFrames = new Map<string, number>();
for (let i = 0; i < FRAMES; i++) {
  const key = frameKey(speech.subarray(i * 160, i * 160 + 160));
  ownFrames.set(key, ownFrames.has(key) ? -1 : i);
}

/** Loud = mean |sample| above ~ -40 dBFS (μ-law bytes near 0xFF/0x7F are silence). */
function loud(payload: Buffer): boolean {
  let n = 0;
  for (let i = 0; i < payload.length; i++) if ((payload[i]! & 0x7f) < 0x5c) n++;
  return n > payload.length / 8;
}

/** One call as the callers saw it. */
export interface CallResult {
  index: number;
  status: number;
  connectedMs: number;
  framesSent: number;
  packetsReceived: number;
  lost: number;
  duplicates: number;
  audioPackets: number;
  ownSpeechPackets: number;
  /** Epoch ms of each received packet that carried audio (burst checks). */
  audioArrivals: number[];
}

/** What the callers print as their last stdout line. */
export interface CallersReport {
  calls: CallResult[];
  /** RTP inter-arrival intervals at the callers, ms. */
  intervals: { p50: number; p99: number; max: number; count: number; outside20pm5: number };
  /**
   * How late the callers sent their own packets (send time − due time, ms): the load generator's
   * health. Packets more than 20 ms late went out in a catch-up burst with the next one.
   */
  sendLateness: { p50: number; p99: number; max: number; over20: number };
  /**
   * Echo mode: our own frame sent → the same audio received back, ms (caller → server → app →
   * server playout → caller; includes every socket queue on the way). Loud frames with unique
   * content only.
   */
  echoRoundTrip: { p50: number; p99: number; max: number; count: number };
  /**
   * The echo round trip second by second (seconds since the callers started, ramp-up included):
   * frames measured, mean and max ms, and how many took over 100 ms — drift (a delay that grows
   * and stays) and bursts (one bad second) look different here, and both look alike in a p99.
   */
  echoRoundTripTimeline: EchoSecond[];
}

/** One second of {@link CallersReport.echoRoundTripTimeline}. */
export interface EchoSecond {
  /** Seconds since the callers started. */
  s: number;
  frames: number;
  meanMs: number;
  maxMs: number;
  over100: number;
}

const intervals = new LatencyHistogram();
const sendLateness = new LatencyHistogram();
const echoRoundTrip = new LatencyHistogram();
const startedAt = performance.now();
process.stdout.write('#started\n'); // the orchestrator's timelines count seconds from here
/** Per second since `startedAt`: [frames, sum ms, max ms, over 100 ms]. */
const timeline: Array<[number, number, number, number]> = [];
/** Records one echo round trip of `ms` measured at `at` (performance.now() ms). */
function recordEcho(at: number, ms: number): void {
  echoRoundTrip.record(ms);
  const t = (timeline[Math.floor((at - startedAt) / 1000)] ??= [0, 0, 0, 0]);
  t[0]++;
  t[1] += ms;
  if (ms > t[2]) t[2] = ms;
  if (ms > 100) t[3]++;
}
let sentOver20 = 0;
let intervalsOut = 0;
let intervalsTotal = 0;
const results: CallResult[] = [];
const peer = await TestSipPeer.start();
const live: Array<{
  call: PeerCall;
  result: CallResult;
  start: number;
  sent: number;
  end: number;
  /** When each fixture frame was last sent (performance.now() ms), by frame index. */
  sentAt: Float64Array;
}> = [];

function place(index: number): Promise<void> {
  const result: CallResult = {
    index,
    status: 0,
    connectedMs: 0,
    framesSent: 0,
    packetsReceived: 0,
    lost: 0,
    duplicates: 0,
    audioPackets: 0,
    ownSpeechPackets: 0,
    audioArrivals: [],
  };
  results.push(result);
  let lastSeq = -1;
  let lastAt = 0;
  const sentAt = new Float64Array(FRAMES).fill(NaN);
  return (async () => {
    const call = await peer.call(target, {
      user: values.user,
      from: String(1000 + index),
      onRtp: (msg, at) => {
        if ((msg[1]! & 0x7f) !== 0) return;
        result.packetsReceived++;
        const seq = msg.readUInt16BE(2);
        if (lastSeq >= 0) {
          const d = (seq - lastSeq) & 0xffff;
          if (d === 0 || d > 0x8000) result.duplicates++;
          else result.lost += d - 1;
          const gap = at - lastAt;
          intervals.record(gap);
          intervalsTotal++;
          if (gap < 15 || gap > 25) intervalsOut++;
        }
        lastSeq = seq;
        lastAt = at;
        const payload = msg.subarray(12);
        if (loud(payload)) {
          result.audioPackets++;
          if (values.arrivals) result.audioArrivals.push(Date.now()); // wall clock, comparable with the app's
          const own = ownFrames.get(frameKey(payload));
          if (own !== undefined) {
            result.ownSpeechPackets++;
            // The fixture loops every 7.4 s: the frame's last sending is the one that came back.
            if (own >= 0 && at >= sentAt[own]!) recordEcho(at, at - sentAt[own]!);
          }
        }
      },
    });
    result.status = await call.final;
    if (result.status !== 200) return;
    const start = performance.now() + phaseOffsetMs(index);
    live.push({ call, result, start, sent: 0, end: start + durationMs, sentAt });
  })();
}

let firstEnded = false;
// One pacer for every call: each call sends frame k at start + 20k ms.
const pacer = setInterval(() => {
  const now = performance.now();
  for (const c of live) {
    if (c.end === 0) continue;
    const due = Math.min(Math.floor((now - c.start) / 20) + 1, Math.floor(durationMs / 20));
    while (c.sent < due) {
      const late = now - (c.start + 20 * c.sent);
      sendLateness.record(late);
      if (late > 20) sentOver20++;
      const i = c.sent % FRAMES;
      c.call.sendRtp(0, speech.subarray(i * 160, i * 160 + 160), {
        marker: c.sent === 0,
        timestamp: (8000 + c.sent * 160) >>> 0,
      });
      c.sentAt[i] = performance.now();
      c.sent++;
    }
    c.result.framesSent = c.sent;
    if (now >= c.end) {
      if (!firstEnded) {
        firstEnded = true;
        process.stdout.write('#first-end\n'); // the orchestrator's steady-state window closes
      }
      c.end = 0;
      c.result.connectedMs = now - c.start;
      void c.call.bye();
    }
  }
}, PACER_MS);

const placed: Array<Promise<void>> = [];
for (let i = 0; i < N; i++) {
  placed.push(place(FIRST_INDEX + i));
  await new Promise((r) => setTimeout(r, 1000 / rate));
}
await Promise.all(placed);
process.stdout.write('#all-up\n'); // the orchestrator's steady-state window opens
await new Promise<void>((resolve) => {
  const check = setInterval(() => {
    if (live.every((c) => c.end === 0) && live.length === results.filter((r) => r.status === 200).length) {
      clearInterval(check);
      resolve();
    }
  }, 50);
});
await new Promise((r) => setTimeout(r, 500)); // BYE responses and the last packets
clearInterval(pacer);
peer.close();
const report: CallersReport = {
  calls: results,
  intervals: {
    p50: intervals.quantile(0.5),
    p99: intervals.quantile(0.99),
    max: intervals.max,
    count: intervalsTotal,
    outside20pm5: intervalsTotal ? intervalsOut / intervalsTotal : 0,
  },
  sendLateness: {
    p50: sendLateness.quantile(0.5),
    p99: sendLateness.quantile(0.99),
    max: sendLateness.max,
    over20: sentOver20,
  },
  echoRoundTrip: {
    p50: echoRoundTrip.quantile(0.5),
    p99: echoRoundTrip.quantile(0.99),
    max: echoRoundTrip.max,
    count: echoRoundTrip.count,
  },
  echoRoundTripTimeline: [...timeline.entries()]
    .filter(([, t]) => t !== undefined && t[0] > 0)
    .map(([second, t]) => ({
      s: second,
      frames: t[0],
      meanMs: +(t[1] / t[0]).toFixed(1),
      maxMs: +t[2].toFixed(1),
      over100: t[3],
    })),
};
const out = JSON.stringify(report) + '\n';
// Exit only once the (possibly large) report has been flushed to the pipe.
process.stdout.write(out, () => process.exit(0));
