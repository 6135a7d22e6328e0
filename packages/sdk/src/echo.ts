/**
 * The echo behaviour (used by `examples/echo-bot` and the server's built-in demo application):
 * every inbound `media` frame is played straight back as a 20 ms `playAudio` in the stream's own
 * format, a `checkpoint` is marked every `checkpointEvery` frames, and DTMF digits are echoed with
 * `sendDTMF`.
 */
import type { StreamSession } from './stream-session.js';

/** Counters shared by every echoed session. */
export interface EchoStats {
  sessions: number;
  framesEchoed: number;
  checkpointsAcked: number;
}

/** Makes `session` echo. `stats` is updated in place. */
export function echoSession(
  session: StreamSession,
  stats: EchoStats,
  options: { checkpointEvery?: number } = {},
): void {
  const every = options.checkpointEvery ?? 50;
  let frames = 0;
  stats.sessions++;
  session.on('media', (e) => {
    if (e.media.track !== 'inbound') return;
    session.playAudio(Buffer.from(e.media.payload, 'base64'));
    stats.framesEchoed++;
    if (++frames % every === 0) session.checkpoint(`echo-${frames / every}`);
  });
  session.on('dtmf', (e) => session.sendDTMF(e.dtmf.digit));
  session.on('playedStream', () => stats.checkpointsAcked++);
}
