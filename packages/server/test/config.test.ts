import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CallstreamError, loadConfig, parseConfig } from '../src/index.js';

test('defaults follow protocol.md Appendix A and the result is frozen', () => {
  const c = parseConfig({});
  assert.equal(c.stream.connectTimeoutMs, 5000);
  assert.deepEqual(c.stream.retryDelaysMs, [250, 1000]);
  assert.equal(c.stream.redials, 2);
  assert.equal(c.stream.backlogMs, 40000);
  assert.equal(c.stream.playbackCapMs, 40000);
  assert.equal(c.stream.maxMessageBytes, 16 * 1024 * 1024);
  assert.deepEqual(c.callbacks.retryDelaysMs, [1000, 2000, 4000]);
  assert.equal(c.stream.checkpointAckEvent, 'playedStream');
  assert.equal(c.gc.heapGrowingPercent, 200);
  assert.equal(parseConfig({ gc: { heapGrowingPercent: 0 } }).gc.heapGrowingPercent, 0);
  assert.throws(() => parseConfig({ gc: { heapGrowingPercent: -5 } }), /gc\.heapGrowingPercent/);
  assert.throws(() => ((c.stream as { redials: number }).redials = 5));
});

test('every problem is reported at once, with its path', () => {
  try {
    parseConfig({ authToken: 'x', stream: { connectTimeoutMs: -1, checkpointAckEvent: 'ack' }, bogus: 1 });
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof CallstreamError);
    assert.equal(e.code, 'config_invalid');
    assert.match(e.message, /authToken/);
    assert.match(e.message, /stream\.connectTimeoutMs/);
    assert.match(e.message, /stream\.checkpointAckEvent/);
    assert.match(e.message, /bogus/);
  }
});

test('file then environment; a bad file or variable is a clear config error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-config-'));
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ authId: 'MAFROMFILE0000000000', stream: { redials: 1 } }));
  const c = loadConfig(file, { CALLSTREAM_AUTH_TOKEN: 'from-env-token', CALLSTREAM_LOG_LEVEL: 'debug' });
  assert.equal(c.authId, 'MAFROMFILE0000000000');
  assert.equal(c.authToken, 'from-env-token');
  assert.equal(c.stream.redials, 1);
  assert.equal(c.log.level, 'debug');
  writeFileSync(file, '{not json');
  assert.throws(() => loadConfig(file, {}), /cannot read configuration file/);
  assert.throws(() => loadConfig(undefined, { CALLSTREAM_STRICT: 'yes' }), /CALLSTREAM_STRICT/);
});
