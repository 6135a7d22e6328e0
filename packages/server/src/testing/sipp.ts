/**
 * Runs sipp (Debian `sip-tester`) as a real SIP peer: scenario templates with `{{name}}`
 * placeholders are filled in, written to a temp dir, and run for one call on loopback.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Options of {@link runSipp}. */
export interface SippOptions {
  /** Scenario template path (or `builtin`). */
  scenario?: string;
  /** One of sipp's built-in scenarios (`uas`, `uac`, …) instead of a file. */
  builtin?: string;
  /** Placeholder values. */
  vars?: Record<string, string | number>;
  /** Target `host:port` (none for a UAS). */
  target?: string;
  /** Request-URI user (`-s`). */
  service?: string;
  /** `u1` (UDP) or `t1` (TCP). */
  transport?: 'u1' | 't1';
  /** sipp's own SIP port (0 = let sipp choose). */
  localPort?: number;
  /** Wall-clock limit, ms. */
  timeoutMs?: number;
  /** Extra arguments. */
  args?: string[];
}

/** What sipp did. */
export interface SippResult {
  /** 0 = all calls succeeded, 1 = at least one failed, others = fatal. */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Contents of the error trace (`-trace_err`), empty when none. */
  errors: string;
}

/**
 * Scenario XML that plays pcaps in order, pausing after each: `[['a.pcap', 3000], ['b.pcap', 400]]`.
 * sipp's `play_pcap_audio` returns at once, so each pause must cover its pcap's length.
 */
export function pcapPlays(plays: Array<[string, number]>): string {
  return plays
    .map(
      ([file, ms]) =>
        `<nop><action><exec play_pcap_audio="${file}"/></action></nop>\n  <pause milliseconds="${ms}"/>`,
    )
    .join('\n  ');
}

/** A free UDP port on 127.0.0.1 (for a sipp UAS that others must reach). */
export async function freeUdpPort(): Promise<number> {
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Runs one sipp call.
 * @throws Error if sipp cannot be spawned or exceeds `timeoutMs`
 */
export async function runSipp(o: SippOptions): Promise<SippResult> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-sipp-'));
  let scenarioArgs: string[];
  if (o.scenario) {
    let text = readFileSync(o.scenario, 'utf8');
    for (const [k, v] of Object.entries(o.vars ?? {})) text = text.replaceAll(`{{${k}}}`, String(v));
    const scenario = join(dir, 'scenario.xml');
    writeFileSync(scenario, text);
    scenarioArgs = ['-sf', scenario];
  } else scenarioArgs = ['-sn', o.builtin ?? 'uac'];
  const errFile = join(dir, 'errors.log');
  const args = [
    ...(o.target ? [o.target] : []),
    ...scenarioArgs,
    '-m',
    '1',
    '-i',
    '127.0.0.1',
    '-mi',
    '127.0.0.1',
    '-p',
    String(o.localPort ?? 0),
    '-s',
    o.service ?? 'callstream',
    '-t',
    o.transport ?? 'u1',
    '-trace_err',
    '-error_file',
    errFile,
    '-timeout',
    `${Math.ceil((o.timeoutMs ?? 30000) / 1000)}s`,
    '-timeout_error',
    '-nostdin',
    ...(o.args ?? []),
  ];
  const child = spawn('/usr/bin/sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exitCode = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(
      () => {
        child.kill('SIGKILL');
        reject(new Error(`sipp did not finish in ${o.timeoutMs ?? 30000} ms\n${stderr}`));
      },
      (o.timeoutMs ?? 30000) + 5000,
    );
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve(code ?? -1);
    });
  });
  const errors = existsSync(errFile) ? readFileSync(errFile, 'utf8') : '';
  return { exitCode, stdout, stderr, errors };
}
