/**
 * The callstream server: store (migrations, crash recovery), runtime, records, durable callbacks,
 * REST API and metrics, wired together. `callstream serve` runs it; tests start it in-process.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AddressInfo } from 'node:net';
import { createRuntime, type Runtime, type RuntimeOverrides } from './app.js';
import type { Config } from './config/config.js';
import { buildApi } from './api/server.js';
import { Metrics } from './api/metrics.js';
import { Records } from './store/records.js';
import { Store, type RecoveryReport } from './store/store.js';
import { StoreOutbox } from './store/outbox.js';
import { systemClock } from './clock/clock.js';
import { SipServer } from './ingress/sip/sip-server.js';
import { installDemoApp } from './demo/demo-app.js';

/** A running server. */
export interface Server {
  runtime: Runtime;
  records: Records;
  store: Store;
  http: FastifyInstance;
  /** `http://host:port` */
  baseUrl: string;
  recovery: RecoveryReport;
  /** SIP ingress, when `config.sip.enabled`. */
  sip: SipServer | null;
  /** Graceful stop: streams get `stop` and close 1001, callbacks drain (bounded), store closes. */
  close(options?: { drainMs?: number }): Promise<void>;
}

/** Options of {@link startServer}. */
export interface ServerOptions extends Omit<RuntimeOverrides, 'outbox'> {
  /** Enable the SimulatedCall REST extension. */
  simulatedCalls?: boolean;
  /**
   * Serve the built-in demo application (greeting + echo bot) and let it take SIP calls that no
   * configured application takes.
   */
  demo?: boolean;
  logger?: Logger;
}

/**
 * Opens the store (migrating it), closes what an unclean stop left live, resumes pending
 * callbacks, and starts HTTP on `config.http`.
 * @throws Error if the database cannot be opened or the port cannot be bound
 */
export async function startServer(config: Config, options: ServerOptions = {}): Promise<Server> {
  const store = await Store.open({
    databaseUrl: config.store.databaseUrl,
    sqliteFile: config.store.sqliteFile,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const clock = options.clock ?? systemClock;
  const outbox = new StoreOutbox(store, () => clock.now());
  const runtime = createRuntime(config, { ...options, outbox });
  const records = new Records(store, config, runtime.clock);
  const recovery = await store.recover((start, end) => records.bill(start, end));
  if (recovery.streams || recovery.calls) {
    runtime.logger.warn(recovery, 'closed records left live by an unclean stop');
  }
  const metrics = new Metrics(runtime, records);
  metrics.addText(() => store.metricsText() + outbox.metricsText());
  runtime.onCallCreated((call) => {
    records.trackCall(call);
    call.onStreamCreated((s) => metrics.track(s));
  });
  for (const row of await store.pendingOutbox()) {
    runtime.callbacks.send({
      key: row.ordering_key,
      url: row.url,
      method: row.method === 'GET' ? 'GET' : 'POST',
      params: JSON.parse(row.params) as Record<string, string>,
      headers: JSON.parse(row.headers) as Record<string, string>,
      deliveryId: row.delivery_id,
    });
  }
  let sip: SipServer | null = null;
  const http = await buildApi({
    runtime,
    records,
    metrics,
    simulatedCalls: options.simulatedCalls ?? false,
    ...(config.sip.enabled
      ? {
          dial: (o) => {
            if (!sip) return Promise.reject(new Error('SIP is not started yet'));
            return sip.dial(o);
          },
        }
      : {}),
  });
  const localHost =
    config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  let httpPort = 0;
  const demo = options.demo ? installDemoApp(http, () => `ws://${localHost}:${httpPort}`) : null;
  await http.listen({ host: config.http.host, port: config.http.port });
  const addr = http.server.address() as AddressInfo;
  httpPort = addr.port;
  if (config.sip.enabled) {
    try {
      sip = await SipServer.start(
        runtime,
        demo
          ? {
              fallbackApplication: {
                name: 'demo',
                answerUrl: `http://${localHost}:${httpPort}${demo.answerPath}`,
                answerMethod: 'POST',
                fallbackMethod: 'POST',
                hangupMethod: 'POST',
                numbers: [],
              },
            }
          : {},
      );
      const started = sip;
      metrics.addText(() => started.metricsText());
    } catch (e) {
      await http.close();
      await store.close();
      throw e;
    }
  }
  let closed = false;
  return {
    runtime,
    records,
    store,
    http,
    baseUrl: `http://${config.http.host}:${addr.port}`,
    recovery,
    sip,
    async close({ drainMs = 5000 } = {}) {
      if (closed) return;
      closed = true;
      await sip?.close();
      demo?.close();
      await http.close();
      for (const call of records.liveCalls.values()) call.hangup('SHUTDOWN', { shutdown: true });
      await Promise.race([runtime.callbacks.idle(), new Promise((r) => setTimeout(r, drainMs).unref())]);
      records.close();
      await runtime.close();
      await outbox.flush(); // outcomes still waiting for a batch
      await store.close();
    },
  };
}
