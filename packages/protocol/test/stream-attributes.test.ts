import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExtraHeaders, parseStreamContentType, parseStreamElement } from '../src/index.js';

const URL = 'wss://agent.example.com/ws?session=42&x=1';

test('defaults for a bare <Stream>', () => {
  const r = parseStreamElement({}, `\n  ${URL}\n`);
  assert.equal(r.rejection, null);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.params.serviceUrl, URL);
  assert.equal(r.params.bidirectional, false);
  assert.equal(r.params.audioTrack, 'inbound');
  assert.equal(r.params.streamTimeout, 86400);
  assert.equal(r.params.contentType, 'audio/x-l16;rate=8000');
  assert.equal(r.params.statusCallbackMethod, 'POST');
  assert.equal(r.params.statusCallbackUrl, null);
  assert.equal(r.params.extraHeaders.json, '{}');
  assert.equal(r.params.keepCallAlive, false);
  assert.equal(r.params.noiseCancellationLevel, 85);
});

test('every attribute parsed leniently', () => {
  const r = parseStreamElement(
    {
      bidirectional: 'TRUE',
      audioTrack: 'Inbound',
      streamTimeout: '120',
      statusCallbackUrl: ' https://app.example.com/s ',
      statusCallbackMethod: 'get',
      contentType: 'AUDIO/X-MULAW ; rate=8000',
      extraHeaders: 'userId=12345, sessionId=abc-123;;',
      keepCallAlive: '1',
      noiseCancellation: 'true',
      noiseCancellationLevel: '95',
    },
    URL,
  );
  assert.equal(r.rejection, null);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(
    { ...r.params, extraHeaders: r.params.extraHeaders.json },
    {
      serviceUrl: URL,
      bidirectional: true,
      audioTrack: 'inbound',
      streamTimeout: 120,
      statusCallbackUrl: 'https://app.example.com/s',
      statusCallbackMethod: 'GET',
      contentType: 'audio/x-mulaw;rate=8000',
      extraHeaders: '{"userId":"12345","sessionId":"abc-123"}',
      keepCallAlive: true,
      noiseCancellation: true,
      noiseCancellationLevel: 95,
    },
  );
});

test('rejections name the problem; warnings default the value', () => {
  assert.match(parseStreamElement({}, 'https://x/ws').rejection ?? '', /ws:\/\/ or wss:\/\//);
  assert.match(
    parseStreamElement({ bidirectional: 'yes' }, URL).rejection ?? '',
    /bidirectional must be true or false/,
  );
  assert.match(parseStreamElement({ audioTrack: 'left' }, URL).rejection ?? '', /audioTrack/);
  assert.match(
    parseStreamElement({ contentType: 'audio/x-mulaw;rate=16000' }, URL).rejection ?? '',
    /contentType/,
  );
  assert.match(
    parseStreamElement({ extraHeaders: 'a=b c' }, URL).rejection ?? '',
    /invalid character in "a=b c"/,
  );
  assert.match(
    parseStreamElement({ extraHeaders: 'novalue' }, URL).rejection ?? '',
    /malformed pair "novalue"/,
  );

  const coerced = parseStreamElement({ bidirectional: 'true', audioTrack: 'both' }, URL);
  assert.equal(coerced.rejection, null);
  assert.equal(coerced.params.audioTrack, 'inbound');
  assert.equal(coerced.warnings.length, 1);
  assert.match(
    parseStreamElement({ bidirectional: 'true', audioTrack: 'both' }, URL, { strict: true }).rejection ?? '',
    /inbound/,
  );

  const w = parseStreamElement(
    { streamTimeout: '-5', statusCallbackUrl: 'ftp://x', keepCallAlive: 'maybe', foo: 'bar' },
    URL,
  );
  assert.equal(w.rejection, null);
  assert.equal(w.params.streamTimeout, 86400);
  assert.equal(w.params.statusCallbackUrl, null);
  assert.equal(w.params.keepCallAlive, false);
  assert.deepEqual(w.warnings.map((x) => x.attribute).sort(), [
    'foo',
    'keepCallAlive',
    'statusCallbackUrl',
    'streamTimeout',
  ]);
  assert.match(
    parseStreamElement({ streamTimeout: '0' }, URL, { strict: true }).rejection ?? '',
    /streamTimeout/,
  );
});

test('noiseCancellationLevel out of range: logged error, 85 used, stream proceeds (even strict)', () => {
  for (const level of ['59', '101', '85.5', 'high']) {
    const r = parseStreamElement({ noiseCancellation: 'true', noiseCancellationLevel: level }, URL, {
      strict: true,
    });
    assert.equal(r.rejection, null);
    assert.equal(r.params.noiseCancellationLevel, 85);
    assert.equal(r.warnings[0]?.code, 'attribute_invalid');
  }
});

test('extraHeaders: 512-byte limit, duplicates (last wins), strict charset', () => {
  const big = `k=${'a'.repeat(511)}`;
  const r = parseExtraHeaders(big);
  assert.ok(!r.ok);
  assert.equal(r.ok ? '' : r.detail, 'exceeds 512 bytes');
  const d = parseExtraHeaders('a=1,b=2,a=3');
  assert.ok(d.ok);
  assert.equal(d.ok && d.value.json, '{"a":"3","b":"2"}');
  assert.equal(d.ok && d.warnings.length, 1);
  assert.ok(!parseExtraHeaders('a_b=1', { strict: true }).ok);
  assert.ok(parseExtraHeaders('a_b=1').ok);
  assert.equal(parseStreamContentType('audio/x-l16;rate=44100'), null);
});
