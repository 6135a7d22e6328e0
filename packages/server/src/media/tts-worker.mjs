// Text-to-speech worker for <Speak> (see tts.ts). eSpeak NG compiled to WebAssembly (npm
// `espeak-ng`) runs synchronously for ~100 ms per sentence, so it lives on its own thread: the media
// clock of every call keeps ticking meanwhile. Protocol: { id, text, voice, rate } → { id, wav } or
// { id, error }.
import { parentPort } from 'node:worker_threads';
import ESpeakNg from 'espeak-ng';

parentPort.on('message', async ({ id, text, voice, rate }) => {
  const errors = [];
  try {
    const es = await ESpeakNg({
      arguments: ['-w', 'out.wav', '-v', voice, '-s', String(rate), '--', text],
      print: () => {},
      printErr: (line) => errors.push(String(line)),
    });
    let wav;
    try {
      wav = es.FS.readFile('out.wav');
    } catch {
      throw new Error(errors.find((e) => !e.includes('keepRuntimeAlive')) ?? 'eSpeak NG produced no audio');
    }
    parentPort.postMessage({ id, wav }, [wav.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
