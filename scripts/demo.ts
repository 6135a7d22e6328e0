/**
 * `npm start`: the main job on an embedded default — the echo bot plus a simulated call that plays
 * the committed speech sample into a bidirectional μ-law `<Stream>` and prints the summary.
 * (When SIP lands, `npm start` becomes the real server.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startEchoBot } from '@callstream/example-echo-bot';
import { createRuntime, formatSummary, loadConfig, runSimulatedCall, writeWav } from '@callstream/server';

const wav = readFileSync(new URL('../fixtures/speech-8k.wav', import.meta.url));
const bot = await startEchoBot();
const config = loadConfig();
const runtime = createRuntime(config, { logger: pino({ level: 'warn' }) });
console.log(`echo bot on ${bot.url}; calling it with fixtures/speech-8k.wav (real time)...`);
const result = await runSimulatedCall(runtime, {
  wav,
  streamUrl: bot.url,
  attributes: { bidirectional: 'true', contentType: 'audio/x-mulaw;rate=8000', extraHeaders: 'demo=1' },
});
await runtime.close();
await bot.close();
const out = join(tmpdir(), 'callstream-demo-reply.wav');
writeFileSync(out, writeWav(result.reply, 8000));
console.log(formatSummary(result));
console.log(`  reply written to    ${out}`);
process.exitCode = result.status === 'stopped' ? 0 : 1;
