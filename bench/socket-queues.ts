/**
 * What waits in the kernel for a process to read it: the receive queues of its TCP and UDP sockets
 * (`/proc/net/tcp`, `/proc/net/udp`: `rx_queue`, bytes), matched to the process by socket inode
 * (`/proc/<pid>/fd`). A process that falls behind its input keeps the backlog there, where no
 * timestamp taken inside it can see it (issue 6: 1.5 s of echo delay that was neither in the
 * playout queue nor in any in-server latency figure). Linux only; loopback IPv4 sockets.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Bytes waiting to be read by one process, by protocol. */
export interface RecvQueues {
  tcpBytes: number;
  udpBytes: number;
}

/** Socket inodes held open by `pid` (empty when the process is gone). */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // closed between the listing and the read
    }
  }
  return out;
}

/** Sum of `rx_queue` over the lines of a `/proc/net/{tcp,udp}` table whose inode is in `inodes`. */
function sumRx(table: string, inodes: Set<string>): number {
  let sum = 0;
  const lines = table.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9]!)) continue;
    sum += parseInt(f[4]!.split(':')[1]!, 16);
  }
  return sum;
}

/**
 * The receive queues of each process in `pids` (name → pid), read now.
 * @returns name → bytes waiting, per protocol; zeros for a process that is gone
 */
export function recvQueues(pids: Record<string, number>): Record<string, RecvQueues> {
  const tcp = readFileSync('/proc/net/tcp', 'utf8');
  const udp = readFileSync('/proc/net/udp', 'utf8');
  const out: Record<string, RecvQueues> = {};
  for (const [name, pid] of Object.entries(pids)) {
    const inodes = socketInodes(pid);
    out[name] = { tcpBytes: sumRx(tcp, inodes), udpBytes: sumRx(udp, inodes) };
  }
  return out;
}
