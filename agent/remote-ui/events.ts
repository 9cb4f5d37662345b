/**
 * The Remote UI's server-sent event streams: each open `GET /api/events` of a logged-in session gets
 * every agent event as one `data:` line of JSON. Bounded: a few streams per session and in all (the
 * oldest is closed for a new one), and a reader that does not keep up — its unsent bytes pass a
 * limit — is dropped rather than buffered. The agent's events are subscribed only while a stream is
 * open, and a stream closes when its session ends.
 */
import type { ServerResponse } from 'node:http';
import type { AgentEventLine, Subscribe } from './adapter.js';

/** Open streams at most, in all and per session. */
export const MAX_STREAMS = 8;
export const MAX_STREAMS_PER_SESSION = 2;
/** Unsent bytes past which a slow reader is dropped. */
export const MAX_PENDING_BYTES = 256 * 1024;
/** A comment line this often keeps proxies and browsers from timing the stream out, and checks the session. */
export const KEEPALIVE_MS = 25_000;

interface Stream {
  session: string;
  res: ServerResponse;
}

/** The open event streams of the Remote UI. */
export class EventStreams {
  readonly #subscribe: Subscribe;
  readonly #streams: Stream[] = [];
  #unsubscribe: (() => void) | undefined;
  #keepalive: NodeJS.Timeout | undefined;
  /** Whether a session is still live (checked at each keepalive; an expired one's streams close). */
  readonly #live: (session: string) => boolean;

  constructor(subscribe: Subscribe, live: (session: string) => boolean) {
    this.#subscribe = subscribe;
    this.#live = live;
  }

  /** How many streams are open. */
  get size(): number {
    return this.#streams.length;
  }

  /** Starts a stream on a response whose headers are not sent yet. */
  open(session: string, res: ServerResponse, headers: Record<string, string>): void {
    const mine = this.#streams.filter((s) => s.session === session);
    if (mine.length >= MAX_STREAMS_PER_SESSION) this.#close(mine[0]!);
    if (this.#streams.length >= MAX_STREAMS) this.#close(this.#streams[0]!);
    const s: Stream = { session, res };
    this.#streams.push(s);
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('retry: 5000\n: ok\n\n');
    res.once('close', () => this.#remove(s));
    if (!this.#unsubscribe) {
      this.#unsubscribe = this.#subscribe((e) => this.#send(e));
      this.#keepalive = setInterval(() => this.#ping(), KEEPALIVE_MS).unref();
    }
  }

  /** Closes a session's streams (logout, expiry). */
  closeSession(session: string): void {
    for (const s of this.#streams.filter((x) => x.session === session)) this.#close(s);
  }

  /** Closes every stream. */
  closeAll(): void {
    for (const s of [...this.#streams]) this.#close(s);
  }

  #send(e: AgentEventLine): void {
    const line = `data: ${JSON.stringify(e)}\n\n`;
    for (const s of [...this.#streams]) this.#write(s, line);
  }

  #ping(): void {
    for (const s of [...this.#streams]) {
      if (!this.#live(s.session)) this.#close(s);
      else this.#write(s, ': keepalive\n\n');
    }
  }

  #write(s: Stream, text: string): void {
    // A reader that lets this much pile up is not reading: dropped, it reconnects if it is alive.
    if (s.res.writableLength > MAX_PENDING_BYTES) this.#close(s);
    else s.res.write(text);
  }

  #close(s: Stream): void {
    this.#remove(s);
    s.res.destroy();
  }

  #remove(s: Stream): void {
    const i = this.#streams.indexOf(s);
    if (i < 0) return;
    this.#streams.splice(i, 1);
    if (this.#streams.length === 0) {
      this.#unsubscribe?.();
      this.#unsubscribe = undefined;
      clearInterval(this.#keepalive);
      this.#keepalive = undefined;
    }
  }
}
