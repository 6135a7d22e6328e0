/**
 * @callstream/protocol — Plivo Audio Stream wire formats. No I/O, no timers, no clocks.
 * See ../../shared/spec/protocol.md (docs/ in this repository summarise it).
 */
export * from './content-type.js';
export * from './extra-headers.js';
export * from './events.js';
export * from './stream-attributes.js';
export * from './signature.js';
export * from './ids.js';
export * from './rest/stream-start.js';
export * from './xml/parse.js';
