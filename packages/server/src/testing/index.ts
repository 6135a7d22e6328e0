/**
 * Test helpers shipped with the server (design: "ship your fakes"): fake clock, test WebSocket
 * app, callback receiver, manually driven call leg, and audio comparison.
 */
export { FakeClock } from '../clock/fake-clock.js';
export * from './test-ws-app.js';
export * from './callback-receiver.js';
export * from './test-leg.js';
export * from './audio-compare.js';
export * from './audio-quality.js';
export * from './pcap.js';
export * from './sipp.js';
export * from './sip-peer.js';
