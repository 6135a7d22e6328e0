/** Runs `callstream serve` as a child process for crash and shutdown tests. */
import { spawn, type ChildProcess } from 'node:child_process';

const BIN = new URL('../bin/callstream.js', import.meta.url).pathname;

/** A server child process and its base URL. */
export interface ServerProcess {
  child: ChildProcess;
  baseUrl: string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** Starts `callstream serve --config <file> --simulated-calls` and waits for its listening line. */
export async function spawnServer(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile, '--simulated-calls'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string>((r) =>
    child.once('exit', (code, signal) => r(code ?? signal ?? -1)),
  );
  let out = '';
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 15000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /callstream listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${out}`)));
  });
  return { child, baseUrl, exited };
}
