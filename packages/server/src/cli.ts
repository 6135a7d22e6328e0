#!/usr/bin/env node
/**
 * The `callstream` command line.
 *
 *   callstream call --wav caller.wav --stream ws://host/path [options]
 *
 * plays the WAV as a caller's audio in real time into one `<Stream>`, records what the app plays
 * back and prints a summary. Exit status: 0 when the stream ended normally, 1 when it was dropped
 * or rejected, 2 for bad usage or configuration.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { Command, Option } from 'commander';
import pino from 'pino';
import { createRuntime } from './app.js';
import { loadConfig, parseConfig } from './config/config.js';
import { startServer } from './server.js';
import { CallstreamError } from './errors.js';
import { formatSummary, runSimulatedCall } from './ingress/file/simulated-call.js';
import { writeWav } from './media/wav.js';
import { VERSION } from './version.js';

const program = new Command();
program
  .name('callstream')
  .description('Stream live call audio to WebSocket apps (Plivo Audio Stream compatible)')
  .version(VERSION);

program
  .command('call')
  .description('simulate a caller: play a WAV into a <Stream> and record the reply')
  .requiredOption('--wav <file>', "the caller's audio (WAV, any rate; mono or stereo)")
  .requiredOption('--stream <url>', 'the WebSocket URL of the app (ws:// or wss://)')
  .addOption(new Option('--content-type <type>', 'stream contentType').default('audio/x-l16;rate=8000'))
  .option('--bidirectional', 'let the app play audio back', false)
  .addOption(
    new Option('--audio-track <track>', 'tracks to stream')
      .choices(['inbound', 'outbound', 'both'])
      .default('inbound'),
  )
  .option('--extra-headers <pairs>', 'extraHeaders, e.g. userId=1,sessionId=abc')
  .option('--status-callback <url>', 'status callback URL')
  .addOption(new Option('--status-callback-method <method>', 'GET or POST').default('POST'))
  .option('--stream-timeout <seconds>', 'streamTimeout in seconds')
  .option('--out <file>', 'write the audio played back to the caller to this WAV file (8 kHz)')
  .option('--tail <ms>', 'after the caller audio, wait for this much silence from the app', '1500')
  .option('--max-tail <ms>', 'after the caller audio, wait at most this long', '20000')
  .option('--config <file>', 'configuration file (JSON)')
  .option('--json', 'print the summary as JSON', false)
  .action(async (o) => {
    const config = loadConfig(o.config);
    const logger = pino(
      { level: config.log.level === 'info' ? 'warn' : config.log.level },
      pino.destination(2),
    );
    const runtime = createRuntime(config, { logger });
    const attributes: Record<string, string> = {
      contentType: o.contentType,
      bidirectional: String(o.bidirectional),
      audioTrack: o.audioTrack,
      statusCallbackMethod: o.statusCallbackMethod,
    };
    if (o.extraHeaders) attributes.extraHeaders = o.extraHeaders;
    if (o.statusCallback) attributes.statusCallbackUrl = o.statusCallback;
    if (o.streamTimeout) attributes.streamTimeout = o.streamTimeout;
    const result = await runSimulatedCall(runtime, {
      wav: readFileSync(o.wav),
      streamUrl: o.stream,
      attributes,
      tailMs: Number(o.tail),
      maxTailMs: Number(o.maxTail),
    });
    await runtime.close();
    if (o.out) writeFileSync(o.out, writeWav(result.reply, 8000));
    if (o.json) {
      const { reply: _reply, ...rest } = result;
      console.log(JSON.stringify(rest, null, 2));
    } else {
      console.log(formatSummary(result));
      if (o.out) console.log(`  reply written to    ${o.out}`);
      if (result.status === 'dropped') {
        for (const e of result.debugLog.filter((x) => x.level !== 'info'))
          console.log(`  debug ${e.timestamp} ${e.code}: ${e.message}`);
      }
    }
    process.exitCode = result.status === 'dropped' ? 1 : 0;
  });

program
  .command('serve')
  .description('run the server: SIP ingress, REST API, records, callbacks, /metrics')
  .option('--config <file>', 'configuration file (JSON)')
  .option('--port <port>', 'HTTP port (overrides config)')
  .option('--sip-port <port>', 'SIP port, UDP and TCP (overrides config)')
  .option('--simulated-calls', 'enable the SimulatedCall REST extension (development and tests)', false)
  .option('--demo', 'serve the built-in demo app (greeting + echo bot) for calls no application takes', false)
  .action(async (o) => {
    const loaded = loadConfig(o.config);
    const config =
      o.port === undefined && o.sipPort === undefined
        ? loaded
        : parseConfig({
            ...loaded,
            http: { ...loaded.http, ...(o.port === undefined ? {} : { port: Number(o.port) }) },
            sip: { ...loaded.sip, ...(o.sipPort === undefined ? {} : { port: Number(o.sipPort) }) },
          });
    const logger = pino({ level: config.log.level });
    // A process-wide V8 setting, so here (the process entry) and not in startServer (gc.* in config.ts).
    if (config.gc.heapGrowingPercent > 0)
      v8.setFlagsFromString(`--heap-growing-percent=${config.gc.heapGrowingPercent}`);
    // A bug must not take every live call down: log it and keep serving.
    process.on('unhandledRejection', (err) =>
      logger.error({ err }, 'unhandled rejection (a bug): logged, server kept running'),
    );
    const server = await startServer(config, { logger, simulatedCalls: o.simulatedCalls, demo: o.demo });
    if (server.recovery.streams || server.recovery.calls || server.recovery.pendingCallbacks) {
      logger.warn(server.recovery, 'recovered from an unclean stop');
    }
    // One line on stdout that scripts (and tests) can wait for.
    if (server.sip) {
      console.log(
        `callstream SIP on ${config.sip.transports.join('+')} ${server.sip.address}:${server.sip.port}`,
      );
      if (o.demo)
        console.log(
          `  demo app: call sip:demo@${server.sip.address}:${server.sip.port} and talk to the echo bot`,
        );
    }
    console.log(`callstream listening on ${server.baseUrl} (${server.store.kind})`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'draining');
      void server.close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'unclean shutdown');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program.parseAsync().catch((e: unknown) => {
  if (e instanceof CallstreamError) {
    console.error(`callstream: ${e.message}`);
    process.exit(2);
  }
  console.error(e);
  process.exit(2);
});
