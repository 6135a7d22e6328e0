import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePlivoXml } from '../src/index.js';

test('elements in order with attributes and trimmed text; bare & tolerated', () => {
  const r = parsePlivoXml(`<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Speak voice="WOMAN" loop="2">Hello &amp; welcome</Speak>
  <Stream bidirectional="true" keepCallAlive="true" contentType="audio/x-mulaw;rate=8000">
    wss://agent.example.com/ws?session=42&user=7
  </Stream>
  <Wait length="2"/>
  <Hangup/>
</Response>`);
  assert.ok(r.ok);
  assert.deepEqual(r.elements, [
    { name: 'Speak', attributes: { voice: 'WOMAN', loop: '2' }, text: 'Hello & welcome' },
    {
      name: 'Stream',
      attributes: { bidirectional: 'true', keepCallAlive: 'true', contentType: 'audio/x-mulaw;rate=8000' },
      text: 'wss://agent.example.com/ws?session=42&user=7',
    },
    { name: 'Wait', attributes: { length: '2' }, text: '' },
    { name: 'Hangup', attributes: {}, text: '' },
  ]);
});

test('refused: DTD / entities, malformed, wrong root, not XML', () => {
  const xxe =
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response><Speak>&x;</Speak></Response>';
  assert.match((parsePlivoXml(xxe) as { error: string }).error, /DTD/);
  assert.match((parsePlivoXml('<Response><Speak>hi</Response>') as { error: string }).error, /malformed/);
  assert.match((parsePlivoXml('<Document/>') as { error: string }).error, /<Response>/);
  assert.match((parsePlivoXml('{"not":"xml"}') as { error: string }).error, /malformed|Response/);
  assert.ok(!parsePlivoXml('<Response></Response><Response></Response>').ok);
  assert.deepEqual(parsePlivoXml('<Response/>'), { ok: true, elements: [] });
});
