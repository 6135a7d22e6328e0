/**
 * Configuration: one zod schema with defaults (protocol.md Appendix A), loaded once at start-up
 * from an optional JSON file and the environment, validated with every problem reported at once,
 * then frozen. This is the only module that reads `process.env`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CallstreamError } from '../errors.js';

const ms = z.number().int().nonnegative();

/** The configuration schema. Durations are milliseconds unless the name says otherwise. */
export const configSchema = z
  .object({
    /** Account id (Basic-auth user, `plivo_auth_id`): 20 characters starting `MA` recommended. */
    authId: z.string().min(1).default('MACALLSTREAMDEV00001'),
    /** Account auth token: signs requests to the app (V3). */
    authToken: z.string().min(8).default('callstream-dev-token'),
    /** `start.accountId` on the WebSocket; default the authId. */
    accountId: z.string().optional(),
    /** Strict `<Stream>` validation (protocol.md §1.2). */
    strict: z.boolean().default(false),
    stream: z
      .object({
        connectTimeoutMs: ms.default(5000),
        retryDelaysMs: z.array(ms).default([250, 1000]),
        redials: z.number().int().min(0).max(10).default(2),
        redialResetMs: ms.default(30000),
        backlogMs: z.number().int().positive().default(40000),
        socketBufferBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024),
        playbackCapMs: z.number().int().positive().default(40000),
        /**
         * Playout catch-up (media/playout.ts): a dry spell of at most this many ms in an app's
         * real-time audio is lateness, recovered by removing pitch periods; 0 plays every sample
         * exactly as sent, keeping any delay.
         */
        playoutCatchUpMs: z.number().int().min(0).max(1000).default(200),
        /**
         * Catch-up CPU budget: accelerated frames per tick of a send slot (clock.ts TICK_SLOTS)
         * across all streams of the process (~25 µs each here); streams beyond it keep their
         * lateness for a later tick.
         */
        playoutCatchUpFramesPerTick: z.number().int().min(1).max(100000).default(40),
        /**
         * Which of the media clock's four send slots (clock.ts TICK_SLOTS, 5 ms apart in each 20 ms
         * tick) a new call sends its RTP in. `spread` (default): the least used one, so a tick's
         * work comes in four bursts of a quarter of the calls each (shorter waits for the I/O
         * behind a burst, a catch-up budget per burst); each call still sends every 20 ms at its
         * own fixed phase. `tick`: every call in slot 0, on the tick (one burst).
         */
        sendSlots: z.enum(['spread', 'tick']).default('spread'),
        /**
         * Send-phase alignment (call/send-phase.ts), opt-in: calls start spread over the send slots
         * and a call whose app answers in real time moves its RTP sends, 5 ms at a time, to a few
         * ms after the app's audio arrives (playAudio→RTP p50 about halved). Off: each call keeps
         * the slot `sendSlots` gave it — up to a tick of slack for a jittery app (README
         * "Send-phase alignment" has the measured trade-off).
         */
        playoutAlignSendPhase: z.boolean().default(false),
        /**
         * Least lead of send-phase alignment, ms: how long after the app's mean arrival the call's
         * slot is due at least (call/send-phase.ts `minLeadMs`; more after stragglers, at most
         * `MAX_LEAD_MS` = 12). A longer lead is a larger jitter buffer: fewer frames miss their
         * tick, each waits longer.
         */
        playoutSendLeadMs: z.number().min(0.5).max(12).default(4),
        maxMessageBytes: z
          .number()
          .int()
          .positive()
          .default(16 * 1024 * 1024),
        pingIntervalMs: z.number().int().positive().default(15000),
        pingTimeoutMs: z.number().int().positive().default(15000),
        sendStopEvent: z.boolean().default(true),
        extraHeadersAsHttpHeaders: z.boolean().default(true),
        stopStreamCallbackOnHangup: z.boolean().default(false),
        checkpointAckEvent: z.enum(['playedStream', 'played']).default('playedStream'),
        checkpointCallbackEvent: z.enum(['PlayedStream', 'Played']).default('PlayedStream'),
      })
      .prefault({}),
    /**
     * Call admission control (call/admission.ts): calls beyond a limit are refused — SIP 503, REST
     * HTTP 503 — so the calls already up keep their latency and pacing. 0 = no limit.
     */
    calls: z
      .object({
        /** Most calls at once, set-up included (size it with `npm run bench`, README). */
        maxConcurrent: z.number().int().min(0).default(0),
        /** Most new calls per second (token bucket with one second of burst). */
        maxPerSecond: z.number().min(0).default(0),
        /**
         * Refuse new calls while the main thread's event loop was at least this busy (0…1) over
         * the last second; 0 = never. E.g. 0.9: a saturated server makes every call up late.
         */
        maxLoad: z.number().min(0).max(1).default(0),
      })
      .prefault({}),
    callbacks: z
      .object({
        timeoutMs: z.number().int().positive().default(5000),
        retryDelaysMs: z.array(ms).default([1000, 2000, 4000]),
      })
      .prefault({}),
    dtmf: z.object({ toneMs: z.number().int().positive().default(100), gapMs: ms.default(100) }).prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    gc: z
      .object({
        /**
         * V8's old-generation growing factor, as `1 + p/100`, set when `serve` starts
         * (`--heap-growing-percent`); 0 leaves V8's own heuristics. With them, at 200 streams the
         * old generation (~50 MB live) was marked and compacted every ~5 s, and most seconds with
         * playback waiting ≥ 25 ms held one; at 200 a 60 s run had 1 instead of ~11, for ~30 MB
         * more RSS (docs/performance.md, *Warm-up and host speed*).
         */
        heapGrowingPercent: z.number().int().min(0).max(1000).default(200),
      })
      .prefault({}),
    xml: z
      .object({
        timeoutMs: z.number().int().positive().default(10000),
        maxBytes: z
          .number()
          .int()
          .positive()
          .default(100 * 1024),
        /** Largest `<Play>` file, bytes (50 MiB ≈ 54 min of 16-bit 8 kHz WAV); a larger one is skipped. */
        maxPlayBytes: z
          .number()
          .int()
          .positive()
          .default(50 * 1024 * 1024),
      })
      .prefault({}),
    http: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
      })
      .prefault({}),
    store: z
      .object({
        /** PostgreSQL URL; when absent, SQLite in `sqliteFile`. */
        databaseUrl: z.string().url().optional(),
        sqliteFile: z.string().default('data/callstream.db'),
        /** How often a live stream's last-media time is persisted (crash-recovery precision). */
        progressIntervalMs: z.number().int().positive().default(1000),
      })
      .prefault({}),
    billing: z
      .object({
        ratePerMinute: z
          .string()
          .regex(/^\d+(\.\d{1,5})?$/, 'a decimal with at most 5 decimals')
          .default('0.003'),
        intervalSeconds: z.number().int().positive().default(60),
      })
      .prefault({}),
    sip: z
      .object({
        /** Enable SIP ingress (UDP and TCP on the same port). */
        enabled: z.boolean().default(true),
        /** Bind address of SIP and RTP sockets. */
        host: z.string().default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(5060),
        transports: z
          .array(z.enum(['udp', 'tcp']))
          .min(1)
          .default(['udp', 'tcp']),
        /** Address put in Via, Contact and SDP `c=`; default: `host`, or the first external IPv4 if `host` is a wildcard. */
        advertisedHost: z.string().optional(),
        /** RTP port range (even ports for RTP, the next odd one for RTCP). */
        rtpPortMin: z.number().int().min(1024).max(65534).default(10000),
        rtpPortMax: z.number().int().min(1025).max(65535).default(20000),
        /** Hang up a call whose RTP stopped for this long (0 = never). */
        rtpTimeoutMs: ms.default(30000),
        /**
         * RTP/RTCP sockets on their own I/O thread (true), or on the main thread with the media
         * clock and the streams (false, the default: on a 2-core machine shared with its peers the
         * thread measured no better; see `ingress/rtp/udp-io.ts` and the README).
         */
        rtpIoThread: z.boolean().default(false),
        /** RTP reorder window, packets held while waiting for a missing one. */
        reorderPackets: z.number().int().min(0).max(10).default(3),
        /** Source IPs (exact or CIDR `a.b.c.d/n`) allowed to send INVITE; empty = anyone. */
        allowFrom: z.array(z.string()).default([]),
        /** Digest authentication of inbound INVITEs (RFC 3261 §22, RFC 2617 MD5). */
        auth: z
          .object({ realm: z.string().default('callstream'), username: z.string(), password: z.string() })
          .optional(),
        /** RTCP report interval. */
        rtcpIntervalMs: z.number().int().positive().default(5000),
        /** SIP trunk for outbound calls to numbers (`POST /Call/` with a number in `to`). */
        trunk: z
          .object({
            host: z.string().min(1),
            port: z.number().int().min(1).max(65535).default(5060),
            transport: z.enum(['udp', 'tcp']).default('udp'),
            /** Digest credentials the trunk challenges for. */
            username: z.string().optional(),
            password: z.string().optional(),
          })
          .optional(),
        /** Give up on an outbound INVITE without an answer after this long (Plivo `ring_timeout`). */
        ringTimeoutMs: z.number().int().positive().default(60000),
      })
      .prefault({}),
    /** Applications: which answer URL runs for calls to which number or SIP user (issue 3). */
    applications: z
      .array(
        z.object({
          name: z.string().min(1),
          answerUrl: z.string().url(),
          answerMethod: z.enum(['GET', 'POST']).default('POST'),
          fallbackUrl: z.string().url().optional(),
          fallbackMethod: z.enum(['GET', 'POST']).default('POST'),
          hangupUrl: z.string().url().optional(),
          hangupMethod: z.enum(['GET', 'POST']).default('POST'),
          /** Called numbers / SIP users (the Request-URI user part) this app takes. */
          numbers: z.array(z.string()).default([]),
        }),
      )
      .default([]),
    /** Name of the application taking calls no `numbers` entry matches; none = 404. */
    defaultApplication: z.string().optional(),
    /** UTC offset of `start_time`/`end_time` in records (`+00:00`, `+05:30`, …). */
    timeOffset: z
      .string()
      .regex(/^[+-]\d\d:\d\d$/, 'an offset like +05:30')
      .default('+00:00'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.sip.rtpPortMin >= c.sip.rtpPortMax)
      ctx.addIssue({ code: 'custom', path: ['sip', 'rtpPortMax'], message: 'must be above rtpPortMin' });
    const names = new Set(c.applications.map((a) => a.name));
    if (c.defaultApplication !== undefined && !names.has(c.defaultApplication))
      ctx.addIssue({
        code: 'custom',
        path: ['defaultApplication'],
        message: `no application named "${c.defaultApplication}"`,
      });
  });

/** Validated, frozen configuration. */
export type Config = Readonly<z.output<typeof configSchema>>;

/** Input shape (all optional). */
export type ConfigInput = z.input<typeof configSchema>;

/**
 * Validates a configuration object against {@link configSchema}.
 * @throws CallstreamError `config_invalid` listing every problem, one per line
 */
export function parseConfig(input: unknown): Config {
  const r = configSchema.safeParse(input ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new CallstreamError('config_invalid', `invalid configuration:\n${lines.join('\n')}`);
  }
  return deepFreeze(r.data);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * Loads configuration: the JSON file named by `CALLSTREAM_CONFIG` (or `path`), then environment
 * overrides `CALLSTREAM_AUTH_ID`, `CALLSTREAM_AUTH_TOKEN`, `CALLSTREAM_ACCOUNT_ID`,
 * `CALLSTREAM_STRICT` (`true`/`false`), `CALLSTREAM_LOG_LEVEL`, `CALLSTREAM_DATABASE_URL`,
 * `CALLSTREAM_HTTP_PORT`, `CALLSTREAM_SIP_PORT`.
 * @throws CallstreamError `config_invalid` (unreadable file, bad JSON, or schema problems)
 */
export function loadConfig(path?: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = path ?? env.CALLSTREAM_CONFIG;
  let input: Record<string, unknown> = {};
  if (file) {
    try {
      input = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new CallstreamError(
        'config_invalid',
        `cannot read configuration file ${file}: ${(e as Error).message}`,
      );
    }
  }
  const problems: string[] = [];
  if (env.CALLSTREAM_AUTH_ID) input.authId = env.CALLSTREAM_AUTH_ID;
  if (env.CALLSTREAM_AUTH_TOKEN) input.authToken = env.CALLSTREAM_AUTH_TOKEN;
  if (env.CALLSTREAM_ACCOUNT_ID) input.accountId = env.CALLSTREAM_ACCOUNT_ID;
  if (env.CALLSTREAM_STRICT) {
    if (env.CALLSTREAM_STRICT === 'true' || env.CALLSTREAM_STRICT === 'false')
      input.strict = env.CALLSTREAM_STRICT === 'true';
    else problems.push(`  - CALLSTREAM_STRICT: expected true or false, got "${env.CALLSTREAM_STRICT}"`);
  }
  if (env.CALLSTREAM_DATABASE_URL)
    input.store = { ...(input.store as object), databaseUrl: env.CALLSTREAM_DATABASE_URL };
  if (env.CALLSTREAM_HTTP_PORT)
    input.http = { ...(input.http as object), port: Number(env.CALLSTREAM_HTTP_PORT) };
  if (env.CALLSTREAM_SIP_PORT)
    input.sip = { ...(input.sip as object), port: Number(env.CALLSTREAM_SIP_PORT) };
  if (env.CALLSTREAM_LOG_LEVEL) input.log = { ...(input.log as object), level: env.CALLSTREAM_LOG_LEVEL };
  try {
    const config = parseConfig(input);
    if (problems.length)
      throw new CallstreamError('config_invalid', `invalid configuration:\n${problems.join('\n')}`);
    return config;
  } catch (e) {
    if (e instanceof CallstreamError && problems.length && !e.message.includes(problems[0]!)) {
      throw new CallstreamError('config_invalid', `${e.message}\n${problems.join('\n')}`);
    }
    throw e;
  }
}
