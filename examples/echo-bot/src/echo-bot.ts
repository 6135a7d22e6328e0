/**
 * The echo bot: plays every caller frame straight back (each `media` becomes a 20 ms
 * `playAudio` in the stream's own format), marks a checkpoint every `checkpointEvery` frames, and
 * echoes DTMF digits. Built on @callstream/sdk.
 */
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { StreamSession, echoSession } from '@callstream/sdk';

/** A running echo bot. */
export interface EchoBot {
  /** `ws://host:port/echo` */
  url: string;
  port: number;
  /** Totals over all sessions. */
  stats: { sessions: number; framesEchoed: number; checkpointsAcked: number };
  close(): Promise<void>;
}

/** Starts an echo bot on `host:port` (port 0 = any free port). */
export async function startEchoBot(
  options: { host?: string; port?: number; checkpointEvery?: number } = {},
): Promise<EchoBot> {
  const host = options.host ?? '127.0.0.1';
  const wss = new WebSocketServer({ host, port: options.port ?? 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const stats = { sessions: 0, framesEchoed: 0, checkpointsAcked: 0 };
  wss.on('connection', (socket) =>
    echoSession(new StreamSession(socket), stats, { checkpointEvery: options.checkpointEvery ?? 50 }),
  );
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://${host}:${port}/echo`,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
