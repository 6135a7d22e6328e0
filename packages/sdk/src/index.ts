/**
 * @callstream/sdk — build applications for callstream (and Plivo Audio Stream).
 */
export * from './stream-session.js';
export * from './audio.js';
export * from './echo.js';
export { verifyV3Request, SIGNATURE_HEADERS } from '@callstream/protocol';
export type * from '@callstream/protocol';
