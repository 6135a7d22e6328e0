/**
 * A test HTTP receiver for status callbacks: records each request (method, URL, headers, parsed
 * parameters) and answers with a status chosen by the test (e.g. 500 to force retries).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One received request. */
export interface ReceivedCallback {
  method: string;
  /** Full URL as the sender addressed it (http://127.0.0.1:port/path?query). */
  url: string;
  headers: IncomingHttpHeaders;
  /** Form body (POST) or query (GET) parameters. */
  params: Record<string, string>;
  /** Raw body. */
  body: string;
}

/** Loopback callback receiver. */
export class CallbackReceiver {
  readonly received: ReceivedCallback[] = [];
  /** Status to answer; a function sees the request count so far. */
  status: number | ((n: number) => number) = 200;
  /** TCP connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections = 0;

  private constructor(private readonly server: Server) {
    server.on('connection', () => this.connections++);
  }

  static async start(): Promise<CallbackReceiver> {
    return CallbackReceiver.startOn(0);
  }

  /** Starts on a given loopback port (0 = any). */
  static async startOn(port: number): Promise<CallbackReceiver> {
    let self: CallbackReceiver | undefined;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${req.url}`;
        const params =
          req.method === 'POST'
            ? Object.fromEntries(new URLSearchParams(body))
            : Object.fromEntries(new URL(url).searchParams);
        const r = self!;
        r.received.push({ method: req.method ?? '', url, headers: req.headers, params, body });
        const status = typeof r.status === 'function' ? r.status(r.received.length) : r.status;
        res.writeHead(status).end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    self = new CallbackReceiver(server);
    return self;
  }

  /** `http://127.0.0.1:<port><path>` */
  url(path = '/status'): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  /** `Event` values received, in order. */
  events(): string[] {
    return this.received.map((r) => r.params.Event ?? '');
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
