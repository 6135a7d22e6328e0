/**
 * The simulated caller as users run it: the `callstream call` executable against the echo bot
 * (built on the SDK), in real time, with a status callback receiver.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { startEchoBot } from '@callstream/example-echo-bot';
import { createRuntime, parseConfig, readWav, runSimulatedCall, writeWav } from '../src/index.js';
import { CallbackReceiver, bestLagCorrelation } from '../src/testing/index.js';
import { assertSignedCallback } from './helpers.js';

const run = promisify(execFile);
const BIN = new URL('../bin/callstream.js', import.meta.url).pathname;

function toneWav(seconds: number): { wav: Buffer; pcm: Int16Array } {
  const pcm = new Int16Array(seconds * 8000).map((_, i) =>
    Math.round(7000 * Math.sin((2 * Math.PI * 350 * i) / 8000) * Math.sin((Math.PI * i) / 8000)),
  );
  return { wav: writeWav(pcm, 8000), pcm };
}

test('callstream call: plays the WAV, records the echo, prints the summary, sends signed callbacks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-cli-'));
  const { wav, pcm } = toneWav(2);
  writeFileSync(join(dir, 'caller.wav'), wav);
  const bot = await startEchoBot();
  const receiver = await CallbackReceiver.start();
  try {
    const args = [
      'call',
      '--wav',
      join(dir, 'caller.wav'),
      '--stream',
      bot.url,
      '--bidirectional',
      '--content-type',
      'audio/x-mulaw;rate=8000',
      '--status-callback',
      receiver.url(),
      '--extra-headers',
      'userId=7',
      '--out',
      join(dir, 'reply.wav'),
      '--tail',
      '300',
      '--json',
    ];
    const { stdout } = await run(process.execPath, [BIN, ...args], { timeout: 30000 });
    const summary = JSON.parse(stdout);
    assert.equal(summary.status, 'stopped');
    assert.equal(summary.endReason, 'call_hangup');
    assert.ok(summary.stats.sent.media >= 100, `media sent ${summary.stats.sent.media}`);
    assert.equal(summary.stats.sent.start, 1);
    const marks = summary.stats.received.checkpoint;
    assert.ok(marks >= 2, 'echo bot marks a checkpoint per second of audio');
    assert.equal(summary.stats.checkpointsAcked, marks, 'every checkpoint acknowledged');
    const reply = readWav(readFileSync(join(dir, 'reply.wav')));
    assert.equal(reply.sampleRate, 8000);
    const { correlation } = bestLagCorrelation(pcm, reply.samples, 2000);
    // The echo is the caller's audio, sample for sample — unless this machine stalled a process
    // mid-call: then the app's audio came late, a dry spell went out and catch-up removed as much
    // later, which shifts part of the reply (the summary says so). Only then is less accepted.
    const { drySpellMs, catchUpMs } = summary.playout as { drySpellMs: number; catchUpMs: number };
    const altered = drySpellMs > 0 || catchUpMs > 0;
    assert.ok(
      correlation >= (altered ? 0.8 : 0.99),
      `reply correlates ${correlation}; dry spells ${drySpellMs} ms, caught up ${catchUpMs} ms`,
    );
    assert.deepEqual(receiver.events(), ['StartStream', ...Array<string>(marks).fill('PlayedStream')]);
    assert.equal(receiver.received[0]!.params.ExtraHeaders, 'userId=7');
    assert.equal(receiver.received[0]!.headers.userid, '7');
    assert.equal(receiver.received[1]!.params.Name, 'echo-1');
    for (const r of receiver.received) assertSignedCallback(r, 'callstream-dev-token');

    const human = await run(process.execPath, [BIN, ...args.filter((a) => a !== '--json')], {
      timeout: 30000,
    });
    assert.match(human.stdout, /checkpoints acked\s+[1-9]/);
    assert.match(human.stdout, /playout\s+\d+(\.\d+)? ms silence inside utterances/);
    assert.match(human.stdout, /sent to app\s+start=1 media=\d+ playedStream=\d+ stop=1/);
  } finally {
    await bot.close();
    await receiver.close();
  }
});

test('DTMF round trip: caller key press → dtmf event → echo bot sendDTMF → digit at the caller', async () => {
  const bot = await startEchoBot();
  const runtime = createRuntime(parseConfig({}), { logger: pino({ level: 'silent' }) });
  const { wav } = toneWav(1);
  const result = await runSimulatedCall(runtime, {
    wav,
    streamUrl: bot.url,
    attributes: { bidirectional: 'true', contentType: 'audio/x-l16;rate=8000' },
    tailMs: 400,
    onCall: ({ leg, stream }) =>
      stream.onEvent((e) => e.type === 'started' && setTimeout(() => leg.pressDigit('5'), 100)),
  });
  assert.equal(result.stats.sent.dtmf, 1);
  assert.equal(result.stats.received.sendDTMF, 1);
  assert.deepEqual(
    result.dtmfReceived.map((d) => [d.digit, d.durationMs]),
    [['5', 100]],
  );
  await runtime.close();
  await bot.close();
});
