import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  signUpgrade,
  signV3Request,
  upgradeSignatureUrls,
  v3SignedMessage,
  verifyV3Request,
  newNonce,
} from '../src/index.js';

const require = createRequire(import.meta.url);
const plivo = require('plivo') as {
  validateV3Signature: (
    method: string,
    uri: string,
    nonce: string,
    token: string,
    signature: string,
    params?: Record<string, string>,
  ) => boolean;
};

const TOKEN = 'MY_AUTH_TOKEN';
const NONCE = '12345678901234567890';
const BODY = {
  Event: 'StartStream',
  StreamID: '20170ada-f610-433b-8758-c02a2aab3662',
  CallUUID: '78737f83-4660-490d-98e1-025dfe4b5c8f',
};
const C =
  'CallUUID78737f83-4660-490d-98e1-025dfe4b5c8fEventStartStreamStreamID20170ada-f610-433b-8758-c02a2aab3662';

// protocol.md §4.4, every vector.
const vectors: Array<{
  method: string;
  url: string;
  body: Record<string, string>;
  message: string;
  sig: string;
}> = [
  {
    method: 'POST',
    url: 'https://example.com/stream-status',
    body: BODY,
    message: `https://example.com/stream-status?${C}`,
    sig: 'VMAIIQU8QKv/ngywcf2Q/wxODOKHccOfUehYg8vkpaI=',
  },
  {
    method: 'GET',
    url: 'https://example.com/stream-status?StreamID=abc&Event=StopStream',
    body: {},
    message: 'https://example.com/stream-status?Event=StopStream&StreamID=abc',
    sig: 'cQl/eWJfqvABNdeXr/wh9XT4UxQjchqolx8iEnKrq9Y=',
  },
  {
    method: 'POST',
    url: 'https://example.com/cb?x=1',
    body: BODY,
    message: `https://example.com/cb?x=1.${C}`,
    sig: 'apM7S1i8FveZgUMpdGjBOIiLPMvvLwrbTWgvYnYNq7s=',
  },
  {
    method: 'POST',
    url: 'https://example.com/stream-status',
    body: {},
    message: 'https://example.com/stream-status',
    sig: 'bDRBkwcl07PdTjyke0+v3+K0yC699m45nviUx2/Y92k=',
  },
  {
    method: 'GET',
    url: 'https://agent.example.com/ws?session=42',
    body: {},
    message: 'https://agent.example.com/ws?session=42',
    sig: 'S6+J5H/eR+5We6llOolz0adqkvt+eerV4u3/cPCJTiE=',
  },
  {
    method: 'GET',
    url: 'http://agent.example.com/ws?session=42',
    body: {},
    message: 'http://agent.example.com/ws?session=42',
    sig: 'fGyGeWASjsj2zHm8WDkB8caqvKN+cBbxwlBqB1MNUKc=',
  },
  {
    method: 'GET',
    url: 'http://agent.example.com/ws?session=42/websocket',
    body: {},
    message: 'http://agent.example.com/ws?session=42/websocket',
    sig: 'NzqTuye92LQaLKDTaul4jtpZUvgjQBZQqkU2oJj10kg=',
  },
];

for (const v of vectors) {
  test(`V3 vector ${v.method} ${v.url} (${Object.keys(v.body).length} body params)`, () => {
    assert.equal(v3SignedMessage(v.method, v.url, v.body), v.message);
    assert.equal(signV3Request(v.method, v.url, v.body, NONCE, TOKEN), v.sig);
    assert.ok(verifyV3Request(v.method, v.url, v.body, NONCE, TOKEN, `junk,${v.sig}`));
    assert.ok(!verifyV3Request(v.method, v.url, v.body, NONCE, 'OTHER_TOKEN', v.sig));
    assert.ok(
      plivo.validateV3Signature(v.method, v.url, NONCE, TOKEN, v.sig, v.method === 'POST' ? v.body : {}),
    );
  });
}

test('upgrade signature: three variants joined by "," match protocol.md §3.1', () => {
  assert.deepEqual(upgradeSignatureUrls('wss://agent.example.com/ws?session=42'), [
    'https://agent.example.com/ws?session=42',
    'http://agent.example.com/ws?session=42',
    'http://agent.example.com/ws?session=42/websocket',
  ]);
  assert.equal(
    signUpgrade('wss://agent.example.com/ws?session=42', NONCE, TOKEN),
    'S6+J5H/eR+5We6llOolz0adqkvt+eerV4u3/cPCJTiE=,fGyGeWASjsj2zHm8WDkB8caqvKN+cBbxwlBqB1MNUKc=,NzqTuye92LQaLKDTaul4jtpZUvgjQBZQqkU2oJj10kg=',
  );
});

test('the official plivo validator accepts our signatures with fresh nonces and a port in the URL', () => {
  const url = 'http://127.0.0.1:8123/cb?b=2&a=1&a=0';
  const body = { Event: 'StopStream', Reason: 'api_request', Error: '' };
  for (let i = 0; i < 20; i++) {
    const nonce = newNonce();
    assert.match(nonce, /^[1-9]\d{19}$/);
    assert.ok(
      plivo.validateV3Signature(
        'POST',
        url,
        nonce,
        TOKEN,
        signV3Request('POST', url, body, nonce, TOKEN),
        body,
      ),
    );
    assert.ok(
      plivo.validateV3Signature('GET', url, nonce, TOKEN, signV3Request('GET', url, {}, nonce, TOKEN)),
    );
  }
  assert.ok(!plivo.validateV3Signature('GET', url, '1', TOKEN, signV3Request('GET', url, {}, '2', TOKEN)));
});
