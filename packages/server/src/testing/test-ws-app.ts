/**
 * A test WebSocket application: accepts stream sockets on loopback, records every message and the
 * upgrade request of each connection, and lets a test answer, pause, drop or close.
 * Real, reusable code: the e2e tests, the failure tests and the benchmark share it.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** One accepted connection. */
export interface TestConnection {
  socket: WebSocket;
  request: IncomingMessage;
  /** Parsed JSON messages in arrival order. */
  messages: Array<Record<string, any>>;
  /** Raw texts in arrival order. */
  texts: string[];
  closed: boolean;
}

/** A loopback WebSocket server for tests. */
export class TestWsApp {
  readonly connections: TestConnection[] = [];
  private readonly waiters: Array<() => void> = [];

  private constructor(private readonly wss: WebSocketServer) {
    wss.on('connection', (socket, request) => {
      const conn: TestConnection = { socket, request, messages: [], texts: [], closed: false };
      this.connections.push(conn);
      socket.on('message', (data) => {
        const text = data.toString();
        conn.texts.push(text);
        try {
          conn.messages.push(JSON.parse(text));
        } catch {
          conn.messages.push({ unparsable: text });
        }
        this.wake();
      });
      socket.on('close', () => {
        conn.closed = true;
        this.wake();
      });
      this.wake();
    });
  }

  /** Starts a server on 127.0.0.1 (any free port), optionally with a `ws` `maxPayload`. */
  static async start(): Promise<TestWsApp> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 256 * 1024 * 1024 });
    await new Promise<void>((r) => wss.once('listening', r));
    return new TestWsApp(wss);
  }

  /** Port it listens on. */
  get port(): number {
    return (this.wss.address() as AddressInfo).port;
  }

  /** `ws://127.0.0.1:<port><path>` */
  url(path = '/stream'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** The latest connection (throws if none). */
  get last(): TestConnection {
    const c = this.connections[this.connections.length - 1];
    if (!c) throw new Error('no connection yet');
    return c;
  }

  /** All messages of all connections, in order. */
  allMessages(): Array<Record<string, any>> {
    return this.connections.flatMap((c) => c.messages);
  }

  /** Messages of one event name across connections. */
  events(name: string): Array<Record<string, any>> {
    return this.allMessages().filter((m) => m.event === name);
  }

  /** Sends a text frame on the latest connection. */
  send(text: string): void {
    this.last.socket.send(text);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Waits (real time) until `cond()` holds, re-checking on every message and connection.
   * @throws Error after `timeoutMs`, with `what` in the message
   */
  async waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits until `n` connections exist and each has received its first message (`start`). */
  waitForStarts(n = 1, timeoutMs = 5000): Promise<void> {
    return this.waitFor(
      () => this.connections.length >= n && this.connections.every((c) => c.messages.length >= 1),
      `${n} connection(s) with start`,
      timeoutMs,
    );
  }

  /** Stops accepting, terminates every connection. */
  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}
