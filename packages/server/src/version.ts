/** callstream's version, sent as `User-Agent: callstream/<version>` (protocol.md §1.1, §4.3). */
export const VERSION = '0.1.0';
/** The User-Agent of every request callstream makes. */
export const USER_AGENT = `callstream/${VERSION}`;
