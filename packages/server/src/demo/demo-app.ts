/**
 * The built-in demo application (`callstream serve --demo`, what `npm start` runs): served by the
 * server itself so a fresh install answers calls with nothing else running.
 * - `GET|POST /demo/answer` → Plivo XML: a spoken greeting, then a bidirectional μ-law `<Stream>`
 *   with `keepCallAlive` to the built-in echo bot, so the caller hears themself;
 * - `ws://…/demo/echo` → the echo bot (`@callstream/sdk` {@link echoSession}).
 */
import type { FastifyInstance } from 'fastify';
import { WebSocketServer } from 'ws';
import { StreamSession, echoSession, type EchoStats } from '@callstream/sdk';

/** The demo's greeting. */
export const DEMO_GREETING = 'Hello, this is callstream. Say something, and you will hear yourself.';

/** A running demo app. */
export interface DemoApp {
  stats: EchoStats;
  /** Answer URL path (`/demo/answer`). */
  answerPath: string;
  close(): void;
}

/**
 * Adds the demo routes to `http` (before it listens) and handles WebSocket upgrades on
 * `/demo/echo`. `wsBase()` gives the `ws://host:port` the XML points at (known after listen).
 */
export function installDemoApp(http: FastifyInstance, wsBase: () => string): DemoApp {
  const stats: EchoStats = { sessions: 0, framesEchoed: 0, checkpointsAcked: 0 };
  const xml = () =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n  <Speak>${DEMO_GREETING}</Speak>\n` +
    `  <Stream bidirectional="true" keepCallAlive="true" contentType="audio/x-mulaw;rate=8000">${wsBase()}/demo/echo</Stream>\n</Response>\n`;
  const answer = async (_req: unknown, reply: { type(t: string): { send(b: string): unknown } }) =>
    reply.type('application/xml').send(xml());
  http.get('/demo/answer', answer);
  http.post('/demo/answer', answer);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  wss.on('connection', (socket) => echoSession(new StreamSession(socket), stats));
  http.server.on('upgrade', (req, socket, head) => {
    if (!req.url?.startsWith('/demo/echo')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  return {
    stats,
    answerPath: '/demo/answer',
    close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
    },
  };
}
