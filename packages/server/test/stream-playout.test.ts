/**
 * Playout with a fake clock (protocol.md §3.6): real WebSocket app, fake media clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appMessages } from '@callstream/protocol';
import { g711Encode, MULAW_SILENCE, writeWav } from '../src/index.js';
import { CallbackReceiver, TestLeg, TestWsApp } from '../src/testing/index.js';
import { harness, toneMulaw, until } from './helpers.js';

const MULAW = 'audio/x-mulaw;rate=8000';

/** Fake-clock times at which the harness's leg sent each frame to the caller (appended as sent). */
function recordSendTimes(h: ReturnType<typeof harness>): number[] {
  const sentAt: number[] = [];
  const send = h.leg.sendFrame.bind(h.leg);
  h.leg.sendFrame = (frame, info) => {
    sentAt.push(h.clock.now());
    send(frame, info);
  };
  return sentAt;
}

async function connected(app: TestWsApp) {
  await app.waitFor(() => app.connections.length > 0 && app.last.messages.length > 0, 'start');
  assert.equal(app.last.messages[0]!.event, 'start');
}

/** A bidirectional μ-law stream on a fake clock with the 4 ms grace window, its app connected. */
async function graceWindowStream() {
  const app = await TestWsApp.start();
  const h = harness();
  h.clock.graceMs = 4;
  const sentAt = recordSendTimes(h);
  const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: MULAW });
  await connected(app);
  return { app, h, sentAt, stream, t0: h.clock.now() };
}

test('10 s sent in one burst plays out in exactly 10 s; checkpoint acked with the last packet', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: MULAW });
  await connected(app);
  const audio = toneMulaw(10_000, g711Encode);
  for (let i = 0; i < audio.length; i += 320)
    app.send(appMessages.playAudio('audio/x-mulaw', 8000, audio.subarray(i, i + 320)));
  app.send(appMessages.checkpoint(stream.streamId, 'end of burst'));
  await until(() => stream.stats.received.checkpoint === 1, 'burst received');
  assert.equal(stream.stats.received.playAudio, 250);
  assert.equal(stream.playoutQueuedMs, 10_000);

  h.clock.advance(9_980);
  assert.equal(h.leg.sent.length, 499);
  assert.equal(stream.stats.checkpointsAcked, 0, 'not acked while its audio is still queued');
  h.clock.advance(20);
  assert.equal(h.leg.sent.length, 500);
  assert.equal(stream.stats.checkpointsAcked, 1, 'acked right after the packet carrying its last sample');
  h.clock.advance(20);
  assert.equal(h.leg.sent[500]!.info.hasPlayback, false);
  assert.ok(h.leg.sent.slice(0, 500).every((s) => s.info.hasPlayback));
  assert.deepEqual(
    Buffer.concat(h.leg.sent.slice(0, 500).map((s) => s.frame)),
    Buffer.from(audio),
    'played bit-exact',
  );

  await app.waitFor(() => app.events('playedStream').length === 1, 'playedStream');
  const ack = app.events('playedStream')[0]!;
  assert.deepEqual(ack, {
    sequenceNumber: ack.sequenceNumber,
    event: 'playedStream',
    streamId: stream.streamId,
    name: 'end of burst',
  });
  const seqs = app.last.messages.map((m) => m.sequenceNumber);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i),
    'sequenceNumber 0, 1, 2, … on one counter',
  );
  h.call.hangup();
  await app.close();
});

test('a checkpoint is acked within one packet of its audio leaving, in order, and an empty queue acks at once', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: MULAW });
  await connected(app);
  app.send(appMessages.checkpoint(stream.streamId, 'empty'));
  await until(() => stream.stats.checkpointsAcked === 1, 'immediate ack');
  assert.equal(h.leg.sent.length, 0, 'acked without any tick');

  const tone = toneMulaw(1_000, g711Encode);
  app.send(appMessages.playAudio('audio/x-mulaw', 8000, tone.subarray(0, 4000))); // 500 ms
  app.send(appMessages.checkpoint(stream.streamId, 'a'));
  app.send(appMessages.playAudio('audio/x-mulaw', 8000, tone.subarray(4000, 4070))); // 8.75 ms: ends mid-frame
  app.send(appMessages.checkpoint(stream.streamId, 'b'));
  app.send(appMessages.playAudio('audio/x-mulaw', 8000, tone.subarray(4070)));
  await until(() => stream.stats.received.playAudio === 3, 'messages');
  h.clock.advance(480);
  assert.equal(stream.stats.checkpointsAcked, 1);
  h.clock.advance(20); // frame 25 carries the last sample before "a"
  assert.equal(stream.stats.checkpointsAcked, 2);
  h.clock.advance(20); // frame 26 carries the 70 samples before "b"
  assert.equal(stream.stats.checkpointsAcked, 3);
  await app.waitFor(() => app.events('playedStream').length === 3, 'acks');
  assert.deepEqual(
    app.events('playedStream').map((m) => m.name),
    ['empty', 'a', 'b'],
  );
  h.call.hangup();
  await app.close();
});

test('clearAudio mid-burst: next packet silent, clearedAudio sent, the cleared checkpoint never acked', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: MULAW });
  await connected(app);
  const audio = toneMulaw(10_000, g711Encode);
  app.send(appMessages.playAudio('audio/x-mulaw', 8000, audio));
  app.send(appMessages.checkpoint(stream.streamId, 'never'));
  await until(() => stream.stats.received.checkpoint === 1, 'burst');
  h.clock.advance(1_000);
  assert.ok(h.leg.sent.every((s) => s.info.hasPlayback));
  app.send(appMessages.clearAudio(stream.streamId));
  await until(() => stream.stats.clears === 1, 'clear');
  h.clock.advance(20);
  const next = h.leg.sent[50]!;
  assert.equal(next.info.hasPlayback, false);
  assert.ok(
    next.frame.every((b) => b === MULAW_SILENCE),
    'the next packet holds nothing queued before the clear',
  );
  h.clock.advance(10_000);
  assert.equal(stream.stats.checkpointsAcked, 0);
  await app.waitFor(() => app.events('clearedAudio').length === 1, 'clearedAudio');
  assert.deepEqual(Object.keys(app.events('clearedAudio')[0]!), ['sequenceNumber', 'event', 'streamId']);
  assert.equal(app.events('playedStream').length, 0);
  assert.ok(stream.debugLog.list().some((e) => e.code === 'audio_cleared' && /9000 ms/.test(e.message)));
  h.call.hangup();
  await app.close();
});

test('playAudio formats: L16 16 kHz and wav are converted to the call codec; the 40 s cap rejects the excess with a log entry', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: 'audio/x-l16;rate=16000' });
  await connected(app);
  const n = 16000; // 1 s at 16 kHz
  const pcm = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++)
    pcm.writeInt16LE(Math.round(6000 * Math.sin((2 * Math.PI * 300 * i) / 16000)), i * 2);
  app.send(
    JSON.stringify({
      event: 'playAudio',
      media: { contentType: 'audio/x-l16', sampleRate: '16000', payload: pcm.toString('base64') },
    }),
  );
  app.send(JSON.stringify({ event: 'playAudio', media: { payload: pcm.toString('base64') } })); // missing contentType: stream format
  // wav with a 24 kHz header (0.5 s), then a header-less continuation in the same format (0.25 s)
  const wav24k = writeWav(
    new Int16Array(12000).map((_, i) => Math.round(5000 * Math.sin(i / 9))),
    24000,
  );
  app.send(
    JSON.stringify({ event: 'playAudio', media: { contentType: 'wav', payload: wav24k.toString('base64') } }),
  );
  app.send(
    JSON.stringify({
      event: 'playAudio',
      media: { contentType: 'wav', payload: wav24k.subarray(44, 44 + 12000).toString('base64') },
    }),
  );
  await until(() => stream.stats.received.playAudio === 4, 'four messages');
  assert.ok(stream.playoutQueuedMs < 2750, 'the resampler holds a short tail…');
  app.send(appMessages.checkpoint(stream.streamId, 'flush'));
  await until(() => stream.stats.received.checkpoint === 1, 'checkpoint');
  assert.ok(
    Math.abs(stream.playoutQueuedMs - 2750) <= 1,
    `…which a checkpoint flushes: queued ${stream.playoutQueuedMs} ms`,
  );
  assert.equal(stream.stats.received.invalid ?? 0, 0);
  // 45 s more: 40 s cap
  const big = Buffer.alloc(16000 * 2 * 45);
  app.send(
    JSON.stringify({
      event: 'playAudio',
      media: { contentType: 'audio/x-l16;rate=16000', payload: big.toString('base64') },
    }),
  );
  await until(() => stream.stats.received.playAudio === 5, 'big message');
  assert.equal(Math.round(stream.playoutQueuedMs), 40_000);
  assert.ok(
    stream.stats.playbackDroppedMs >= 7_740 && stream.stats.playbackDroppedMs <= 7_760,
    `${stream.stats.playbackDroppedMs}`,
  );
  assert.ok(stream.debugLog.list().some((e) => e.code === 'playback_overflow'));
  h.call.hangup();
  await app.close();
});

test('sendDTMF joins the playback queue: digits reach the leg in order, invalid characters are logged', async () => {
  const app = await TestWsApp.start();
  const h = harness();
  const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: MULAW });
  await connected(app);
  app.send(appMessages.playAudio('audio/x-mulaw', 8000, toneMulaw(100, g711Encode)));
  app.send(appMessages.sendDTMF('1x2#'));
  await until(() => stream.stats.received.sendDTMF === 1, 'sendDTMF');
  h.clock.advance(1_000);
  assert.deepEqual(
    h.leg.dtmf.map((d) => [d.digit, d.frameIndex]),
    [
      ['1', 5],
      ['2', 15],
      ['#', 25],
    ],
  );
  assert.ok(stream.debugLog.list().some((e) => e.code === 'dtmf_invalid_char' && e.message.includes('x')));
  h.call.hangup();
  await app.close();
});

test('audioTrack both: a monitor stream gets the caller frames (inbound) and exactly the frames sent to the caller (outbound)', async () => {
  const app = await TestWsApp.start();
  const receiver = await CallbackReceiver.start();
  const h = harness();
  const bot = h.startStream(app.url('/bot'), {
    bidirectional: 'true',
    contentType: MULAW,
    statusCallbackUrl: receiver.url(),
  });
  h.startStream(app.url('/monitor'), { audioTrack: 'both', contentType: MULAW });
  await app.waitForStarts(2);
  const botConn = app.connections.find((c) => c.request.url === '/bot')!;
  const monitor = app.connections.find((c) => c.request.url === '/monitor')!;
  assert.deepEqual(monitor.messages[0]!.start.tracks, ['inbound', 'outbound']);
  botConn.socket.send(appMessages.playAudio('audio/x-mulaw', 8000, toneMulaw(200, g711Encode)));
  await until(() => bot.playoutQueuedMs === 200, 'playback queued');
  const caller = toneMulaw(200, g711Encode).map((b) => b ^ 0x0f);
  for (let i = 0; i < 10; i++) {
    h.leg.frame(caller.subarray(i * 160, i * 160 + 160), h.clock.now());
    h.clock.advance(20);
  }
  await app.waitFor(() => monitor.messages.filter((m) => m.event === 'media').length === 20, 'monitor media');
  const media = monitor.messages.filter((m) => m.event === 'media');
  assert.deepEqual(
    media.slice(0, 4).map((m) => [m.media.track, m.media.chunk]),
    [
      ['inbound', 1],
      ['outbound', 1],
      ['inbound', 2],
      ['outbound', 2],
    ],
  );
  const payload = (track: string) =>
    Buffer.concat(
      media.filter((m) => m.media.track === track).map((m) => Buffer.from(m.media.payload, 'base64')),
    );
  assert.deepEqual(payload('inbound'), Buffer.from(caller));
  assert.deepEqual(payload('outbound'), Buffer.concat(h.leg.sent.map((s) => s.frame)));
  assert.deepEqual(payload('outbound'), Buffer.from(toneMulaw(200, g711Encode)));
  // bot-only messages never reach the monitor; ClearedAudio goes to the bot's callback URL
  botConn.socket.send(appMessages.clearAudio(bot.streamId));
  await until(() => receiver.events().includes('ClearedAudio'), 'ClearedAudio callback');
  assert.ok(!monitor.messages.some((m) => m.event === 'clearedAudio'));
  h.call.hangup();
  await receiver.close();
  await app.close();
});

test('grace window: a tick whose frame is a few ms late holds the packet and sends it on arrival; without it, silence at due + 4 ms and the audio next tick', async () => {
  const { app, h, sentAt, stream, t0 } = await graceWindowStream();
  const audio = toneMulaw(80, g711Encode);
  const frame = (k: number) => audio.subarray(k * 160, k * 160 + 160);
  const play = async (k: number) => {
    app.send(appMessages.playAudio('audio/x-mulaw', 8000, frame(k)));
    await until(() => stream.stats.received.playAudio === k + 1, `frame ${k} received`);
  };

  await play(0);
  h.clock.advance(20); // tick 20: frame 0 goes out
  assert.equal(h.leg.sent.length, 1);
  h.clock.advance(20); // tick 40: frame 1 is missing — the packet is held
  assert.equal(h.leg.sent.length, 1, 'held, not silence');
  h.clock.advance(2); // 2 ms into the grace window, frame 1 arrives: sent at once
  await play(1);
  assert.equal(h.leg.sent.length, 2);
  assert.deepEqual(Buffer.from(h.leg.sent[1]!.frame), Buffer.from(frame(1)));
  assert.equal(sentAt[1]! - t0, 42, 'in tick 40’s slot, 2 ms late');

  h.clock.advance(18); // tick 60: held again; nothing comes
  assert.equal(h.leg.sent.length, 2);
  h.clock.advance(5); // the deadline (64) passes: silence goes
  assert.equal(h.leg.sent.length, 3);
  assert.equal(h.leg.sent[2]!.info.hasPlayback, false);
  assert.equal(sentAt[2]! - t0, 64);
  await play(2); // after the deadline: waits for the next tick
  assert.equal(h.leg.sent.length, 3);
  h.clock.advance(15); // tick 80: frame 2 (the queue is no longer waiting: it had audio)
  assert.equal(h.leg.sent.length, 4);
  assert.deepEqual(Buffer.from(h.leg.sent[3]!.frame), Buffer.from(frame(2)));
  assert.equal(sentAt[3]! - t0, 80);
  // Every interval stayed within 20 ± 5 ms: 20, 22, 22, 16.
  assert.deepEqual(
    sentAt.slice(1).map((t, i) => t - sentAt[i]!),
    [22, 22, 16],
  );
  // The silent tick inside the app's audio is a dry spell (callstream_playout_dry_spell_seconds_total).
  assert.equal(stream.playoutDrySpellMs, 20);
  h.call.hangup();
  await app.close();
});

test('grace window: an utterance sent ahead ends without a held packet — every packet on its tick, the checkpoint acked with the last frame', async () => {
  const { app, h, sentAt, stream, t0 } = await graceWindowStream();
  // A TTS burst: 100 ms of audio in one message and its checkpoint, then nothing.
  app.send(appMessages.playAudio('audio/x-mulaw', 8000, toneMulaw(100, g711Encode)));
  app.send(appMessages.checkpoint(stream.streamId, 'utt'));
  await until(() => stream.stats.received.checkpoint === 1, 'checkpoint received');
  for (let i = 0; i < 4; i++) h.clock.advance(20); // ticks 20…80
  assert.equal(stream.stats.checkpointsAcked, 0, 'the last frame has not gone yet');
  h.clock.advance(20); // tick 100: the last frame
  assert.equal(stream.stats.checkpointsAcked, 1, 'acked with the last frame');
  h.clock.advance(20);
  h.clock.advance(20); // ticks 120, 140
  const played = h.leg.sent.filter((s) => s.info.hasPlayback).length;
  assert.equal(played, 5, 'five frames of audio');
  // The queue ran dry at tick 100 with the app's last message 100 ms old: no hold, so the packet
  // after the utterance went out at its tick, not 4 ms late (intervals 20, never 24 and 16).
  assert.deepEqual(
    sentAt.map((t) => t - t0),
    [20, 40, 60, 80, 100, 120, 140],
  );
  await app.waitFor(() => app.last.messages.some((m) => m.event === 'playedStream'), 'playedStream');
  h.call.hangup();
  await app.close();
});

test('send slots: by default calls are spread over the four 5 ms slots (a tick in four bursts), each sending every 20 ms; `tick` puts every call on the tick', async () => {
  for (const [sendSlots, slots, phases] of [
    ['default', [0, 1, 2, 3, 0], [0, 5, 10, 15, 0]],
    ['tick', [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
  ] as const) {
    const h = harness(sendSlots === 'default' ? {} : { stream: { sendSlots } });
    h.clock.slotted = true;
    const legs = [h.leg, ...[1, 2, 3, 4].map(() => new TestLeg())];
    const calls = [h.call, ...legs.slice(1).map((leg) => h.runtime.newCall(leg, { from: '1', to: '2' }))];
    const sentAt = legs.map(() => [] as number[]);
    legs.forEach((leg, i) => {
      const send = leg.sendFrame.bind(leg);
      leg.sendFrame = (frame, info) => {
        sentAt[i]!.push(h.clock.now());
        send(frame, info);
      };
    });
    const t0 = h.clock.now();
    h.clock.advance(100);
    try {
      assert.deepEqual(
        calls.map((c) => c.sendSlot.slot),
        slots,
        `${sendSlots}: slots`,
      );
      for (const [i, times] of sentAt.entries()) {
        const rel = times.map((t) => t - t0);
        assert.equal(rel.length, 5, `${sendSlots}: call ${i} packets in 100 ms`);
        assert.equal(rel[0], (phases[i] === 0 ? 20 : phases[i]) as number, `${sendSlots}: call ${i} phase`);
        assert.ok(
          rel.slice(1).every((t, k) => t - rel[k]! === 20),
          `${sendSlots}: call ${i} every 20 ms: ${rel}`,
        );
      }
    } finally {
      for (const c of calls) c.hangup();
    }
  }
});

test('send phase: an app whose audio lands 9 ms into each tick moves the call to the slot due at 15 (the 4 ms lead) — one 15 ms interval, each frame then waits 6 ms instead of 11, bit-exact and gapless', async () => {
  const app = await TestWsApp.start();
  const h = harness({ stream: { playoutAlignSendPhase: true } });
  h.clock.slotted = true;
  h.clock.graceMs = 4;
  const sentAt = recordSendTimes(h);
  try {
    const stream = h.startStream(app.url(), { bidirectional: 'true', contentType: MULAW });
    await connected(app);
    assert.equal(h.call.sendSlot.slot, 0);
    const t0 = h.clock.now();
    const frames = 60;
    const audio = toneMulaw(frames * 20, g711Encode);
    const arrivedAt: number[] = [];
    h.clock.advance(9);
    for (let k = 0; k < frames; k++) {
      app.send(appMessages.playAudio('audio/x-mulaw', 8000, audio.subarray(k * 160, k * 160 + 160)));
      await until(() => stream.stats.received.playAudio === k + 1, `frame ${k} received`);
      arrivedAt.push(h.clock.now() - t0);
      h.clock.advance(20);
    }
    h.clock.advance(20);
    const played = h.leg.sent.filter((s) => s.info.hasPlayback);
    assert.equal(played.length, frames, 'every frame played, none dropped or repeated');
    assert.deepEqual(Buffer.concat(played.map((s) => s.frame)), Buffer.from(audio), 'bit-exact');
    const firstPlayed = h.leg.sent.findIndex((s) => s.info.hasPlayback);
    const playedAt = sentAt.slice(firstPlayed, firstPlayed + frames).map((t) => t - t0);
    const waits = playedAt.map((t, k) => t - arrivedAt[k]!);
    assert.deepEqual(waits.slice(0, 16), new Array(16).fill(11), 'slot 0 (due at 20): 11 ms per frame');
    assert.deepEqual(waits.slice(17), new Array(frames - 17).fill(6), 'slot 3 (due at 15): 6 ms per frame');
    const intervals = playedAt.slice(1).map((t, k) => t - playedAt[k]!);
    assert.deepEqual(
      intervals.filter((i) => i !== 20),
      [15],
      'one interval of 15 ms at the move, the rest 20',
    );
    assert.deepEqual(h.call.sendSlot, { slot: 3, moves: 1, leadMs: 4 });
    assert.equal(h.call.debugLog.count('send_phase'), 1);
    // The audio stopped: at 15 the frame was held for it, at 19 it went out silent. Audio 10 ms
    // later is a straggler the lead did not cover: the lead grows by 2 ms.
    const more = async (n: number) => {
      app.send(appMessages.playAudio('audio/x-mulaw', 8000, audio.subarray(0, 160)));
      await until(() => stream.stats.received.playAudio === n, `frame ${n} received`);
    };
    await more(frames + 1);
    assert.equal(h.call.sendSlot.leadMs, 6);
    // It stops again and resumes 30 ms after the silent frame (at 39): a pause, not a straggler.
    h.clock.advance(60);
    await more(frames + 2);
    assert.equal(h.call.sendSlot.leadMs, 6);
  } finally {
    h.call.hangup();
    await app.close();
  }
});
