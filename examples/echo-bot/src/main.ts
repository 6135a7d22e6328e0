/** Runs the echo bot: `npm run echo-bot` (PORT, HOST from the environment; default 127.0.0.1:8765). */
import { startEchoBot } from './echo-bot.js';

const bot = await startEchoBot({
  host: process.env.HOST ?? '127.0.0.1',
  port: Number(process.env.PORT ?? 8765),
});
console.log(`echo bot listening on ${bot.url}`);
const stop = () => void bot.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
