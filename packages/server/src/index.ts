/**
 * @callstream/server — the daemon's building blocks and composition root.
 */
export * from './app.js';
export * from './config/config.js';
export * from './errors.js';
export * from './version.js';
export * from './clock/clock.js';
export * from './clock/media-clock.js';
export * from './clock/fake-clock.js';
export * from './call/call.js';
export * from './call/call-leg.js';
export * from './stream/stream.js';
export * from './stream/debug-log.js';
export * from './callbacks/http-callbacks.js';
export * from './callbacks/stream-callbacks.js';
export * from './media/codec.js';
export * from './media/g711.js';
export * from './media/l16.js';
export * from './media/playout.js';
export * from './media/time-scale.js';
export * from './media/resample.js';
export * from './media/wav.js';
export * from './ingress/file/file-leg.js';
export * from './ingress/file/simulated-call.js';
export * from './media/noise-suppression.js';
export * from './server.js';
export * from './store/store.js';
export * from './store/records.js';
export * from './billing/billing.js';
export * from './api/format.js';
