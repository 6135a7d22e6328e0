/**
 * REST representations (protocol.md §2.3, §2.4): time formats and the stream object.
 */
import type { Config } from '../config/config.js';
import type { StreamRow } from '../store/store.js';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD HH:MM:SS` of a Date's UTC fields. */
function utcDateTime(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** `created_at`: UTC with microseconds, `YYYY-MM-DD HH:MM:SS.ffffff+00:00`. */
export function formatCreatedAt(epochUs: number): string {
  const ms = Math.floor(epochUs / 1000);
  return `${utcDateTime(new Date(ms))}.${pad(((epochUs % 1_000_000) + 1_000_000) % 1_000_000, 6)}+00:00`;
}

/** `session_start`: UTC with microseconds, no offset. */
export function formatSessionStart(epochMs: number): string {
  return `${utcDateTime(new Date(epochMs))}.${pad(Math.round((epochMs % 1000) * 1000), 6)}`;
}

/** `start_time`/`end_time`: `YYYY-MM-DD HH:MM:SS+HH:MM` in the configured offset; null stays null. */
export function formatOffsetTime(epochMs: number | null, offset: string): string | null {
  if (epochMs === null) return null;
  const sign = offset.startsWith('-') ? -1 : 1;
  const minutes = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  return `${utcDateTime(new Date(Math.floor(epochMs / 1000) * 1000 + minutes * 60_000))}${offset}`;
}

/** The stream object of §2.3, keys in alphabetical order as Plivo returns them. */
export function streamObject(row: StreamRow, config: Config): Record<string, unknown> {
  return {
    audio_track: row.audio_track,
    bidirectional: row.bidirectional === 1,
    bill_duration: row.bill_duration,
    billed_amount: row.billed_amount,
    call_uuid: row.call_uuid,
    content_type: row.content_type,
    created_at: formatCreatedAt(row.created_us),
    end_time: formatOffsetTime(row.end_ms, config.timeOffset),
    plivo_auth_id: config.authId,
    resource_uri: `/v1/Account/${config.authId}/Call/${row.call_uuid}/Stream/${row.stream_id}/`,
    rounded_bill_duration: row.rounded_bill_duration,
    service_url: row.service_url,
    start_time: formatOffsetTime(row.start_ms, config.timeOffset),
    status: row.status,
    status_callback_url: row.status_callback_url,
    stream_id: row.stream_id,
  };
}
