/**
 * The per-stream debug log (protocol.md §3.8): the last 1000 notable events, oldest first,
 * mirrored to the server log. A flood of one code (e.g. `invalid_message` at 50/s) is kept
 * readable: after 20 entries of a code, only every 100th occurrence is recorded, with a count.
 */
import type { Logger } from 'pino';

/** Levels of debug-log entries. */
export type DebugLevel = 'info' | 'warning' | 'error';

/** One entry, as served by the DebugLog route. */
export interface DebugLogEntry {
  /** ISO 8601 UTC with milliseconds. */
  timestamp: string;
  level: DebugLevel;
  code: string;
  message: string;
}

/** Bounded per-stream debug log. */
export class DebugLog {
  private readonly entries: DebugLogEntry[] = [];
  private readonly perCode = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly logger?: Logger,
    private readonly capacity = 1000,
  ) {}

  /** Records an entry (subject to flood control) and mirrors it to the server log. */
  add(level: DebugLevel, code: string, message: string): void {
    const seen = (this.perCode.get(code) ?? 0) + 1;
    this.perCode.set(code, seen);
    if (seen > 20 && seen % 100 !== 0) return;
    const text = seen > 20 ? `${message} (${seen} so far)` : message;
    this.entries.push({ timestamp: new Date(this.now()).toISOString(), level, code, message: text });
    if (this.entries.length > this.capacity) this.entries.shift();
    const pinoLevel = level === 'warning' ? 'warn' : level;
    this.logger?.[pinoLevel]({ code }, text);
  }

  /** Total occurrences of `code`, including those flood control did not record. */
  count(code: string): number {
    return this.perCode.get(code) ?? 0;
  }

  /** Entries, oldest first (a copy). */
  list(): DebugLogEntry[] {
    return [...this.entries];
  }
}
