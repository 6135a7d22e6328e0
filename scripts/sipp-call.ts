/**
 * `npm run call:sipp [-- host:port [user]]`: places one real SIP call with sipp (Debian
 * `sip-tester`) carrying 3 s of the committed speech sample as μ-law RTP, then reads the server's
 * `/metrics` to show the call reached a stream and was echoed back. Default target: the server
 * `npm start` runs (SIP 127.0.0.1:5060, HTTP 127.0.0.1:8080). Exit code 0 = the call worked.
 */
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readWav } from '../packages/server/src/media/wav.js';
import { g711Encode } from '../packages/server/src/media/g711.js';
import { mulawToRtpPackets, pcapPlays, runSipp, writeRtpPcap } from '../packages/server/src/testing/index.js';

const target = process.argv[2] ?? '127.0.0.1:5060';
const user = process.argv[3] ?? 'demo';
const metricsUrl = process.env.CALLSTREAM_METRICS_URL ?? 'http://127.0.0.1:8080/metrics';

const wav = readWav(readFileSync(new URL('../fixtures/speech-8k.wav', import.meta.url)));
const speech = g711Encode('mulaw', wav.samples.subarray(0, 8000 * 3));
const dir = mkdtempSync(join(tmpdir(), 'cs-call-'));
const pcap = join(dir, 'speech.pcap');
writeRtpPcap(pcap, mulawToRtpPackets(speech));

async function counter(name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').at(-1));
  return sum;
}

const before = await counter('callstream_playaudio_received_total');
// The greeting takes ~4 s to play, plus its synthesis (measured up to ~2 s on a loaded 2-core CI
// machine, where a 5 s pause left < 2 s of speech for the stream); the stream starts after it.
// Wait 7 s, speak for 3 s, stay 1 s more.
console.log(`calling sip:${user}@${target} with sipp (about 11 s)...`);
const result = await runSipp({
  scenario: new URL('../packages/server/test/sipp/uac-pcap.xml', import.meta.url).pathname,
  vars: { plays: `<pause milliseconds="7000"/>\n  ${pcapPlays([[pcap, 4000]])}` },
  target,
  service: user,
  timeoutMs: 30000,
});
const echoed = (await counter('callstream_playaudio_received_total')) - before;
console.log(`sipp exit code ${result.exitCode}; playAudio messages the echo bot sent back: ${echoed}`);
if (result.exitCode !== 0) console.log(result.errors || result.stderr);
process.exitCode = result.exitCode === 0 && echoed >= 100 ? 0 : 1;
