/**
 * A man in the middle at the WebSocket level, for attack tests: relays frames between a client and a
 * server and lets a test record, drop, alter, replay or reorder them, and forge its own. Real sockets.
 */
import { WebSocket, WebSocketServer } from 'ws';

/** What a hook returns: the frames to forward instead (none to drop). */
export type Relay = (frame: Buffer, index: number) => Buffer[];

/** One relayed connection. */
export interface MitmLink {
  client: WebSocket;
  server: WebSocket;
  /** Frames seen so far, as received (before hooks). */
  up: Buffer[];
  down: Buffer[];
  /** Close code the client and server saw. */
  closed: Promise<{ clientCode: number; serverCode: number }>;
}

/** A WebSocket relay with hooks. */
export class Mitm {
  readonly #wss: WebSocketServer;
  readonly #target: number;
  /** Client → server hook (default: forward as is). */
  up: Relay = (f) => [f];
  /** Server → client hook. */
  down: Relay = (f) => [f];
  readonly links: MitmLink[] = [];
  #waiters: ((l: MitmLink) => void)[] = [];

  private constructor(wss: WebSocketServer, target: number) {
    this.#wss = wss;
    this.#target = target;
    wss.on('connection', (client) => this.#relay(client));
  }

  /** Starts a relay to 127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<Mitm> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    return new Mitm(wss, targetPort);
  }

  get port(): number {
    return (this.#wss.address() as { port: number }).port;
  }

  /** Resolves with the next link (or the one already made, by index). */
  link(index: number): Promise<MitmLink> {
    const l = this.links[index];
    if (l) return Promise.resolve(l);
    return new Promise((resolve) => this.#waiters.push((x) => this.links.indexOf(x) === index && resolve(x)));
  }

  /** Sends raw bytes to the server on a link, as if the client had. */
  inject(link: MitmLink, frame: Buffer): void {
    link.server.send(frame, { binary: true });
  }

  async close(): Promise<void> {
    for (const l of this.links) {
      l.client.terminate();
      l.server.terminate();
    }
    await new Promise<void>((r) => this.#wss.close(() => r()));
  }

  #relay(client: WebSocket): void {
    const server = new WebSocket(`ws://127.0.0.1:${this.#target}/`, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    const pending: Buffer[] = [];
    let clientCode = 0;
    let serverCode = 0;
    let done!: (v: { clientCode: number; serverCode: number }) => void;
    const closed = new Promise<{ clientCode: number; serverCode: number }>((r) => (done = r));
    const link: MitmLink = { client, server, up: [], down: [], closed };
    const finish = () => {
      if (client.readyState === WebSocket.CLOSED && server.readyState === WebSocket.CLOSED) done({ clientCode, serverCode });
    };
    client.on('message', (data: Buffer) => {
      link.up.push(data);
      for (const f of this.up(data, link.up.length - 1)) {
        if (server.readyState === WebSocket.OPEN) server.send(f, { binary: true });
        else pending.push(f);
      }
    });
    server.on('open', () => {
      for (const f of pending.splice(0)) server.send(f, { binary: true });
    });
    server.on('message', (data: Buffer) => {
      link.down.push(data);
      for (const f of this.down(data, link.down.length - 1)) if (client.readyState === WebSocket.OPEN) client.send(f, { binary: true });
    });
    server.on('close', (code) => {
      serverCode = code;
      if (client.readyState === WebSocket.OPEN) client.close(code === 1005 || code === 1006 ? 1000 : code);
      else client.terminate();
      finish();
    });
    client.on('close', (code) => {
      clientCode = code;
      if (server.readyState === WebSocket.OPEN) server.close(code === 1005 || code === 1006 ? 1000 : code);
      else server.terminate();
      finish();
    });
    server.on('error', () => client.terminate());
    client.on('error', () => server.terminate());
    this.links.push(link);
    for (const w of [...this.#waiters]) w(link);
  }
}
