/**
 * The benchmark's WebSocket application (its own process): takes every stream and plays audio back.
 *  - `echo`: each inbound `media` frame is returned as a 20 ms `playAudio` (same bytes), with a
 *    `checkpoint` every 50 frames.
 *  - `burst`: behaves like Pipecat — every 3 s an utterance of 2 s of speech is sent as 40 ms chunks
 *    at twice real time, followed by a `checkpoint`; every second utterance is interrupted by a
 *    `clearAudio` 1.5 s after it started (the app sends nothing more of it; a checkpoint not
 *    acknowledged before `clearedAudio` arrives must then never be acknowledged).
 * Checks made here: acknowledgements arrive in order, only for checkpoints not cleared, and never
 * before the utterance's audio could have played. `GET /stats` returns the counters as JSON; the
 * clear times (epoch ms) per bench call let the callers check that no audio follows a clear.
 *
 * With `--stall MS/S` the app blocks its own event loop for MS ms every S s (a busy loop: a GC pause,
 * a CPU-bound turn of a real bot, a starved process): every stream's replies then come late and
 * together — what server-side playout catch-up exists for.
 *
 * Usage: `tsx bench/ws-app.ts --mode echo|burst [--stall MS/S]` → prints `listening <port>`.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocketServer } from 'ws';
import { StreamSession } from '@callstream/sdk';
import { readWav } from '../packages/server/src/media/wav.js';
import { g711Encode } from '../packages/server/src/media/g711.js';

const mode = process.argv.includes('--mode') ? process.argv[process.argv.indexOf('--mode') + 1] : 'echo';
if (mode !== 'echo' && mode !== 'burst') throw new Error(`--mode must be echo or burst, got ${mode}`);
const stall = process.argv.includes('--stall')
  ? process.argv[process.argv.indexOf('--stall') + 1]!.split('/').map(Number)
  : null;
if (stall) {
  const [ms, everyS] = stall as [number, number];
  setInterval(() => {
    const until = performance.now() + ms;
    while (performance.now() < until); // the stall: nothing else runs in this process meanwhile
  }, everyS * 1000).unref();
}

const speech = g711Encode(
  'mulaw',
  readWav(readFileSync(new URL('../fixtures/speech-8k.wav', import.meta.url))).samples,
);
const UTTERANCE_MS = 2000;
const CYCLE_MS = 3000;
const CLEAR_AT_MS = 1500;
const CHUNK_BYTES = 320; // 40 ms of μ-law 8 kHz

/** One stream's counters, as `GET /stats` reports them (keyed by bench call). */
export interface CallStats {
  checkpointsSent: number;
  checkpointsExpected: number;
  checkpointsAcked: number;
  acksOutOfOrder: number;
  acksForCleared: number;
  acksTooEarly: number;
  /** Of the acknowledgements counted in `acksTooEarly`: the earliest, ms after its utterance began. */
  earliestAckMs?: number;
  clears: number;
  clearedAcks: number;
  /** Epoch ms at which each `clearedAudio` was received. */
  clearTimes: number[];
  inboundFrames: number;
  inboundChunkGaps: number;
  playAudioSent: number;
}

const calls = new Map<string, CallStats>();
// The app's own health: a stalled app sends its replies late and in bunches.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
let sessions = 0;

function track(session: StreamSession): CallStats {
  const st: CallStats = {
    checkpointsSent: 0,
    checkpointsExpected: 0,
    checkpointsAcked: 0,
    acksOutOfOrder: 0,
    acksForCleared: 0,
    acksTooEarly: 0,
    clears: 0,
    clearedAcks: 0,
    clearTimes: [],
    inboundFrames: 0,
    inboundChunkGaps: 0,
    playAudioSent: 0,
  };
  let lastChunk = 0;
  session.on('start', (e) => {
    let key = e.start.callId;
    try {
      key = (JSON.parse(e.extra_headers || '{}') as Record<string, string>).benchCall ?? key;
    } catch {
      // keep the call id
    }
    calls.set(key, st);
  });
  session.on('media', (e) => {
    if (e.media.track !== 'inbound') return;
    st.inboundFrames++;
    const chunk = Number(e.media.chunk);
    if (lastChunk && chunk !== lastChunk + 1) st.inboundChunkGaps += Math.max(1, chunk - lastChunk - 1);
    lastChunk = chunk;
  });
  // The clear took effect on the server just before it sent `clearedAudio`: that receipt (wall clock,
  // comparable across processes) is the reference for the callers' "no audio after a clear" check.
  session.on('clearedAudio', () => {
    st.clearedAcks++;
    st.clearTimes.push(Date.now());
  });
  return st;
}

function echo(session: StreamSession, st: CallStats): void {
  const sentAt: number[] = [];
  let frames = 0;
  let lastAcked = 0;
  session.on('media', (e) => {
    if (e.media.track !== 'inbound') return;
    session.playAudio(Buffer.from(e.media.payload, 'base64'));
    st.playAudioSent++;
    if (++frames % 50 === 0) {
      session.checkpoint(`utt-${frames / 50}`);
      st.checkpointsSent++;
      sentAt.push(performance.now());
    }
  });
  session.on('playedStream', (e) => {
    const n = Number(e.name.slice(4));
    st.checkpointsAcked++;
    if (n !== lastAcked + 1) st.acksOutOfOrder++; // a reorder or a skipped checkpoint
    lastAcked = n;
  });
  session.on('close', () => {
    // Expected: every checkpoint up to the last one acknowledged, and any sent ≥ 2 s before the
    // end (its audio had time to play even behind a deep queue); later ones may still be queued
    // when the call ends, which is correct behaviour.
    const end = performance.now();
    st.checkpointsExpected += Math.max(lastAcked, sentAt.filter((t) => end - t >= 2000).length);
  });
}

function burst(session: StreamSession, st: CallStats): void {
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };
  const sentAt = new Map<string, { at: number; cleared: boolean; acked: boolean }>();
  let lastAcked = -1;
  let k = 0;
  const utterance = () => {
    const index = k++;
    const name = `utt-${index}`;
    const start = (index * UTTERANCE_MS * 8) % Math.max(1, speech.length - UTTERANCE_MS * 8);
    const audio = speech.subarray(start, start + UTTERANCE_MS * 8);
    const t0 = performance.now(); // monotonic: durations only
    // An interrupted utterance (its clear sent) sends nothing more, as Pipecat stops its TTS output:
    // an app slowed down by a stall would otherwise still be sending it when the clear fires, and
    // that audio and checkpoint would rightly follow the clear.
    let interrupted = false;
    let off = 0;
    const sendChunk = () => {
      if (interrupted) return;
      if (off >= audio.length) {
        session.checkpoint(name);
        st.checkpointsSent++;
        sentAt.set(name, { at: t0, cleared: false, acked: false });
        return;
      }
      session.playAudio(audio.subarray(off, off + CHUNK_BYTES), {
        contentType: 'audio/x-mulaw',
        sampleRate: 8000,
      });
      st.playAudioSent++;
      off += CHUNK_BYTES;
      later(20, sendChunk); // 40 ms of audio every 20 ms: twice real time
    };
    sendChunk();
    if (index % 2 === 1) {
      later(CLEAR_AT_MS, () => {
        interrupted = true;
        session.clearAudio();
        st.clears++;
      });
    }
    later(CYCLE_MS, utterance);
  };
  session.on('start', () => utterance());
  // Judged by what the server says, in the order it says it (playedStream and clearedAudio share
  // one ordered queue): a checkpoint acknowledged before `clearedAudio` arrived was played before
  // the clear took effect — even if its ack was in flight when we sent `clearAudio`; every one not
  // acknowledged by then was discarded and must never be acknowledged.
  session.on('clearedAudio', () => {
    for (const v of sentAt.values()) if (!v.acked) v.cleared = true;
  });
  session.on('playedStream', (e) => {
    const n = Number(e.name.slice(4));
    const sent = sentAt.get(e.name);
    st.checkpointsAcked++;
    if (n <= lastAcked) st.acksOutOfOrder++;
    lastAcked = n;
    if (sent?.cleared) st.acksForCleared++;
    if (sent) sent.acked = true;
    // The audio takes UTTERANCE_MS to play; after an event-loop stall the media clock may send up
    // to 3 packets back-to-back (catch-up), so allow 4 ticks of slack.
    if (sent && performance.now() - sent.at < UTTERANCE_MS - 80) {
      st.acksTooEarly++;
      st.earliestAckMs = Math.min(st.earliestAckMs ?? Infinity, Math.round(performance.now() - sent.at));
    }
  });
  session.on('close', () => {
    for (const t of timers) clearTimeout(t);
    // Expected acknowledgements: checkpoints whose utterance was not cleared and whose audio had
    // time to play before the call ended.
    const end = performance.now();
    for (const v of sentAt.values())
      if (!v.cleared && end - v.at >= UTTERANCE_MS + 200) st.checkpointsExpected++;
  });
}

const server = http.createServer((req, res) => {
  if (req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    const eventLoopDelayMs = {
      p50: loopDelay.percentile(50) / 1e6,
      p99: loopDelay.percentile(99) / 1e6,
      max: loopDelay.max / 1e6,
    };
    res.end(JSON.stringify({ mode, sessions, eventLoopDelayMs, calls: Object.fromEntries(calls) }));
    return;
  }
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (socket) => {
  sessions++;
  const session = new StreamSession(socket);
  const st = track(session);
  if (mode === 'echo') echo(session, st);
  else burst(session, st);
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${(server.address() as AddressInfo).port}`));
process.on('SIGTERM', () => process.exit(0));
