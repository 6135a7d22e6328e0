/**
 * The error catalogue: every error callstream raises has a stable `code`, a message that says what
 * to do, an HTTP status where it crosses HTTP, and whether retrying can help.
 */

/** Catalogue entries: code → HTTP status and retryability. */
export const ERROR_CODES = {
  config_invalid: { status: 500, retryable: false },
  stream_closed: { status: 409, retryable: false },
  call_ended: { status: 404, retryable: false },
  invalid_parameters: { status: 400, retryable: false },
  wav_unsupported: { status: 400, retryable: false },
  connect_failed: { status: 502, retryable: true },
  /** A new call refused by admission control (call/admission.ts: config `calls`). */
  capacity_exceeded: { status: 503, retryable: true },
} as const;

/** A catalogued error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of callstream's own errors. */
export class CallstreamError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CallstreamError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
  }
}
