import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appMessages,
  decodeAppMessage,
  decodeServerEvent,
  encodeClearedBody,
  encodeDtmfBody,
  encodeMediaBody,
  encodePlayedBody,
  encodeStartBody,
  encodeStopBody,
  parseExtraHeaders,
  streamTemplate,
  withSequence,
  type AppMessage,
} from '../src/index.js';

const CALL = '8c43a765-94fa-4ee9-b9a3-242703e41f63';
const STREAM = 'b77e037d-4119-44b5-902d-25826b654539';
const EH = parseExtraHeaders('userId=12345,sessionId=abc123');
assert.ok(EH.ok);
const ehJson = EH.value.json;

function ok(text: string): AppMessage {
  const r = decodeAppMessage(text);
  assert.ok(r.ok, `expected accept: ${text.slice(0, 120)} (${r.ok ? '' : r.reason})`);
  return r.message;
}
function rejected(text: string): string {
  const r = decodeAppMessage(text);
  assert.ok(!r.ok, `expected reject: ${text.slice(0, 120)}`);
  return r.reason;
}

test('start: exact text and field types of protocol.md §3.3', () => {
  const text = withSequence(
    0,
    encodeStartBody({
      callId: CALL,
      streamId: STREAM,
      accountId: 'MAXXXXXXXXXXXXXXXXXX',
      tracks: ['inbound'],
      encoding: 'audio/x-mulaw',
      sampleRate: 8000,
      extraHeadersJson: ehJson,
    }),
  );
  const v = JSON.parse(text);
  assert.deepEqual(v, {
    sequenceNumber: 0,
    event: 'start',
    start: {
      callId: CALL,
      streamId: STREAM,
      accountId: 'MAXXXXXXXXXXXXXXXXXX',
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000 },
    },
    extra_headers: '{"userId":"12345","sessionId":"abc123"}',
  });
  assert.deepEqual(Object.keys(v), ['sequenceNumber', 'event', 'start', 'extra_headers']);
  assert.equal(typeof v.extra_headers, 'string');
  assert.ok(!('streamId' in v), 'no top-level streamId on start');
});

test('media: timestamp is a string, chunk and sequenceNumber numbers, 160 B μ-law silence', () => {
  const t = streamTemplate(STREAM, ehJson);
  const payload = Buffer.alloc(160, 0xff).toString('base64');
  const v = JSON.parse(withSequence(1, encodeMediaBody(t, 'inbound', 1736937000950, 1, payload)));
  assert.deepEqual(v, {
    sequenceNumber: 1,
    streamId: STREAM,
    event: 'media',
    media: { track: 'inbound', timestamp: '1736937000950', chunk: 1, payload },
    extra_headers: '{"userId":"12345","sessionId":"abc123"}',
  });
  assert.equal(
    payload,
    '/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////w==',
  );
});

test('dtmf, playedStream, clearedAudio, stop: exact shapes', () => {
  const t = streamTemplate(STREAM, '{}');
  assert.deepEqual(JSON.parse(withSequence(152, encodeDtmfBody(t, '5', 1736937003970))), {
    sequenceNumber: 152,
    streamId: STREAM,
    event: 'dtmf',
    dtmf: { track: 'inbound', digit: '5', timestamp: '1736937003970' },
    extra_headers: '{}',
  });
  assert.deepEqual(JSON.parse(withSequence(310, encodePlayedBody(STREAM, 'customer "greeting" audio'))), {
    sequenceNumber: 310,
    event: 'playedStream',
    streamId: STREAM,
    name: 'customer "greeting" audio',
  });
  assert.equal(JSON.parse(withSequence(3, encodePlayedBody(STREAM, 'x', 'played'))).event, 'played');
  assert.deepEqual(JSON.parse(withSequence(311, encodeClearedBody(STREAM))), {
    sequenceNumber: 311,
    event: 'clearedAudio',
    streamId: STREAM,
  });
  assert.deepEqual(JSON.parse(withSequence(1502, encodeStopBody(CALL, STREAM, ['inbound'], 'call_hangup'))), {
    sequenceNumber: 1502,
    event: 'stop',
    streamId: STREAM,
    stop: { callId: CALL, streamId: STREAM, tracks: ['inbound'] },
    reason: 'call_hangup',
  });
});

test('every server event we encode decodes with the application-side decoder', () => {
  const t = streamTemplate(STREAM, ehJson);
  const texts = [
    withSequence(
      0,
      encodeStartBody({
        callId: CALL,
        streamId: STREAM,
        accountId: 'MA1',
        tracks: ['inbound', 'outbound'],
        encoding: 'audio/x-l16',
        sampleRate: 16000,
        extraHeadersJson: '{}',
      }),
    ),
    withSequence(1, encodeMediaBody(t, 'outbound', 1, 7, 'AAAA')),
    withSequence(2, encodeDtmfBody(t, '#', 2)),
    withSequence(3, encodePlayedBody(STREAM, 'n')),
    withSequence(4, encodeClearedBody(STREAM)),
    withSequence(5, encodeStopBody(CALL, STREAM, ['outbound'], 'api_request')),
  ];
  const events = texts.map((x) => {
    const r = decodeServerEvent(x);
    assert.ok(r.ok, x);
    return r.message;
  });
  assert.deepEqual(
    events.map((e) => [e.event, e.sequenceNumber]),
    [
      ['start', 0],
      ['media', 1],
      ['dtmf', 2],
      ['playedStream', 3],
      ['clearedAudio', 4],
      ['stop', 5],
    ],
  );
  // The R2 FAQ example (accountId numeric string, tracks both) decodes too.
  const faq = decodeServerEvent(
    '{"sequenceNumber":0,"event":"start","start":{"callId":"8c43a765-94fa-4ee9-b9a3-242703e41f63","streamId":"b77e037d-4119-44b5-902d-25826b654539","accountId":"155747","tracks":["inbound","outbound"],"mediaFormat":{"encoding":"audio/x-l16","sampleRate":8000}},"extra_headers":"{}"}',
  );
  assert.ok(faq.ok);
});

test('playAudio: every variant of protocol.md §3.4 and §6 #8–#9 decodes', () => {
  const p = Buffer.from([1, 2, 3, 4]).toString('base64');
  const cases: Array<[string, string | null, number | null]> = [
    [
      `{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":8000,"payload":"${p}"}}`,
      'audio/x-l16',
      8000,
    ],
    [
      `{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":"8000","payload":"${p}"}}`,
      'audio/x-l16',
      8000,
    ],
    [
      `{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"${p}"}}`,
      'audio/x-mulaw',
      8000,
    ],
    [
      `{"event":"playAudio","media":{"contentType":"Audio/X-L16; rate=16000","payload":"${p}"}}`,
      'audio/x-l16',
      16000,
    ],
    [
      `{"event":"playAudio","media":{"contentType":"audio/x-l16;rate=16000","sampleRate":"24000","payload":"${p}"}}`,
      'audio/x-l16',
      24000,
    ],
    [`{"event":"playAudio","media":{"contentType":"raw","sampleRate":16000,"payload":"${p}"}}`, 'raw', 16000],
    [`{"event":"playAudio","media":{"contentType":"wav","payload":"${p}"}}`, 'wav', null],
    [`{"event":"playAudio","media":{"payload":"${p}"}}`, null, null],
    [
      `{"event":"playAudio","streamId":"not-checked","media":{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"${p}"}}`,
      'audio/x-mulaw',
      8000,
    ],
  ];
  for (const [text, encoding, rate] of cases) {
    const m = ok(text);
    assert.equal(m.event, 'playAudio');
    if (m.event !== 'playAudio') continue;
    assert.equal(m.encoding, encoding, text);
    assert.equal(m.sampleRate, rate, text);
    assert.deepEqual([...m.payload], [1, 2, 3, 4]);
  }
});

test('checkpoint, clearAudio, sendDTMF decode; missing streamId and name are fine', () => {
  assert.deepEqual(
    ok(
      '{"event":"checkpoint","streamId":"b77e037d-4119-44b5-902d-25826b654539","name":"customer greeting audio"}',
    ),
    {
      event: 'checkpoint',
      name: 'customer greeting audio',
    },
  );
  assert.deepEqual(ok('{"event":"checkpoint"}'), { event: 'checkpoint', name: '' });
  assert.deepEqual(ok('{"event":"clearAudio","streamId":"b77e037d-4119-44b5-902d-25826b654539"}'), {
    event: 'clearAudio',
  });
  assert.deepEqual(ok('{"event":"sendDTMF","dtmf":"1234#"}'), { event: 'sendDTMF', dtmf: '1234#' });
  assert.deepEqual(ok(appMessages.checkpoint(STREAM, 'x')), { event: 'checkpoint', name: 'x' });
});

test('garbage from the app is rejected with a reason, never thrown', () => {
  assert.match(rejected('not json'), /JSON/);
  assert.match(rejected('[1,2]'), /object/);
  assert.match(rejected('null'), /object/);
  assert.match(rejected('{"event":"dance"}'), /unknown event "dance"/);
  assert.match(rejected('{"media":{}}'), /missing "event"/);
  assert.match(
    rejected(
      '{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":8000,"payload":"!!!notbase64"}}',
    ),
    /base64/,
  );
  assert.match(
    rejected('{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":8000,"payload":12}}'),
    /payload/,
  );
  assert.match(
    rejected(
      '{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":true,"payload":"AAAA"}}',
    ),
    /sampleRate/,
  );
  assert.match(
    rejected(
      '{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":4000,"payload":"AAAA"}}',
    ),
    /outside/,
  );
  assert.match(
    rejected('{"event":"playAudio","media":{"contentType":"audio/ogg","payload":"AAAA"}}'),
    /contentType/,
  );
  assert.match(rejected('{"event":"playAudio"}'), /media/);
  assert.match(rejected('{"event":"sendDTMF","dtmf":{"a":1}}'), /dtmf/);
});
