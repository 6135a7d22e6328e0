import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStreamStartBody } from '../src/index.js';

const URL = 'wss://agent.example.com/ws?session=42';
const error = (body: Record<string, unknown>) => {
  const r = parseStreamStartBody(body);
  assert.ok(!r.ok, JSON.stringify(body));
  return r.error;
};

test('checks in the order and wording of protocol.md §2.2', () => {
  assert.equal(error({}), 'service_url is required');
  assert.equal(error({ service_url: 'http://x/ws' }), 'service_url must be a ws:// or wss:// URL');
  assert.equal(
    error({ service_url: URL, bidirectional: 'yes', audio_track: 'left' }),
    'bidirectional must be true or false',
  );
  assert.equal(
    error({ service_url: URL, audio_track: 'left' }),
    'audio_track must be one of inbound, outbound, both',
  );
  assert.equal(
    error({ service_url: URL, bidirectional: true, audio_track: 'both' }),
    'audio_track must be inbound when bidirectional is true',
  );
  assert.equal(error({ service_url: URL, stream_timeout: 0 }), 'stream_timeout must be a positive integer');
  assert.equal(
    error({ service_url: URL, stream_timeout: '1.5' }),
    'stream_timeout must be a positive integer',
  );
  assert.equal(
    error({ service_url: URL, status_callback_url: 'ftp://x' }),
    'status_callback_url must be an http:// or https:// URL',
  );
  assert.equal(
    error({ service_url: URL, status_callback_method: 'PUT' }),
    'status_callback_method must be GET or POST',
  );
  assert.equal(
    error({ service_url: URL, content_type: 'audio/ogg' }),
    'content_type must be one of audio/x-l16;rate=8000, audio/x-l16;rate=16000, audio/x-mulaw;rate=8000',
  );
  assert.equal(
    error({ service_url: URL, extra_headers: 'a=b c' }),
    'extra_headers: invalid character in "a=b c"',
  );
  assert.equal(
    error({ service_url: URL, extra_headers: 'x'.repeat(600) }),
    'extra_headers: exceeds 512 bytes',
  );
});

test('lenient values: case-insensitive keys, string booleans and integers, unknown keys ignored', () => {
  const r = parseStreamStartBody({
    Service_url: ` ${URL} `,
    bidirectional: 'TRUE',
    stream_timeout: '120',
    status_callback_method: 'get',
    content_type: 'audio/x-mulaw;rate=8000',
    keep_call_alive: true,
    cx_bot: { anything: 1 },
    noise_cancellation: 'true',
    noise_cancellation_level: 70,
  });
  assert.ok(r.ok);
  assert.equal(r.params.serviceUrl, URL);
  assert.equal(r.params.bidirectional, true);
  assert.equal(r.params.streamTimeout, 120);
  assert.equal(r.params.statusCallbackMethod, 'GET');
  assert.equal(r.params.keepCallAlive, true);
  assert.equal(r.params.noiseCancellation, true);
  assert.equal(r.params.noiseCancellationLevel, 70);
});

test('noise_cancellation_level out of range: logged warning, 85 used, no 400', () => {
  for (const level of [59, 101, '150', 'loud', 85.5]) {
    const r = parseStreamStartBody({
      service_url: URL,
      noise_cancellation: true,
      noise_cancellation_level: level,
    });
    assert.ok(r.ok);
    assert.equal(r.params.noiseCancellationLevel, 85);
    assert.equal(r.warnings[0]?.attribute, 'noise_cancellation_level');
  }
  const off = parseStreamStartBody({ service_url: URL, noise_cancellation_level: 150 });
  assert.ok(off.ok && off.warnings.length === 0, 'level ignored when cancellation is off');
});
