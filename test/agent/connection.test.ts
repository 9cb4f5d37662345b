/**
 * The connection's ordering of frames against the session keys, with no socket: a stand-in for ws
 * emits frames the way ws does when several arrive in one read (synchronously, one after another).
 */
import { EventEmitter } from 'node:events';
import test from 'ava';
import type { WebSocket } from 'ws';
import { Connection } from '../../agent/connection.js';
import { encodeMessage, type Message } from '../../protocol/codec.js';
import { MAX_FRAME_BYTES } from '../../protocol/limits.js';

/** The frame limits the README states (8 KiB before the handshake, 1 MiB after), not read from the code. */
const HANDSHAKE_LIMIT = 8 * 1024;
const SESSION_LIMIT = 1024 * 1024;
import { ephemeralKeyPair, SecureChannel } from '../../protocol/secure.js';
import { fixture } from '../protocol/fixtures.js';

/** The part of a ws WebSocket a Connection uses; sent frames are kept. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  binaryType = 'nodebuffer';
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  _receiver = { _maxPayload: 0 };
  send(bytes: Uint8Array, _options: unknown, cb?: () => void): void {
    this.sent.push(bytes);
    cb?.();
  }
  close(): void {
    this.readyState = 3;
  }
  terminate(): void {
    this.readyState = 3;
  }
  /** Delivers frames in one tick, as ws does for frames that arrived in one read. */
  deliver(...frames: Uint8Array[]): void {
    for (const f of frames) this.emit('message', Buffer.from(f), true);
  }
}

function channels(): { client: SecureChannel; server: SecureChannel } {
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  const transcript = [new Uint8Array([1, 2, 3])];
  return { client: SecureChannel.derive('client', c, s.publicKey, transcript, 'chacha20-poly1305'), server: SecureChannel.derive('server', s, c.publicKey, transcript, 'chacha20-poly1305') };
}

test('a sealed frame right behind the welcome waits for the session keys the welcome\'s handler sets', async (t) => {
  const ws = new FakeSocket();
  const { client, server } = channels();
  const got: Message[] = [];
  let closed: unknown = 'open';
  const conn = new Connection(ws as unknown as WebSocket, {
    expectsWelcome: true,
    onMessage: async (m) => {
      got.push(m);
      // The real client verifies the welcome first; the keys are set later than the frame arrived.
      if (m.type === 'welcome') {
        await new Promise((r) => setImmediate(r));
        conn.secure(client, MAX_FRAME_BYTES);
      }
    },
    onClose: (reason) => (closed = reason),
  });
  t.is(ws._receiver._maxPayload, HANDSHAKE_LIMIT);
  const deltas = fixture('deltas').message;
  const ping = fixture('pong').message;
  ws.deliver(fixture('welcome').bytes, server.seal(encodeMessage(deltas)), server.seal(encodeMessage(ping)));
  t.is(ws._receiver._maxPayload, SESSION_LIMIT, 'the larger limit applies from the welcome on');
  for (let i = 0; i < 10 && got.length < 3; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(got.map((m) => m.type), ['welcome', 'deltas', 'pong']);
  t.is(closed, 'open', 'the session goes on');
  t.deepEqual(ws.sent, [], 'no refusal was sent');
  t.false(conn.closed);
});

test('the server\'s end never holds frames or raises its limit for a welcome a client sends', async (t) => {
  const ws = new FakeSocket();
  const got: string[] = [];
  const conn = new Connection(ws as unknown as WebSocket, { onMessage: (m) => void got.push(m.type), onClose: () => undefined });
  ws.deliver(fixture('welcome').bytes, fixture('ping').bytes);
  t.is(ws._receiver._maxPayload, HANDSHAKE_LIMIT);
  for (let i = 0; i < 10 && got.length < 2; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(got, ['welcome', 'ping']);
  t.false(conn.closed);
});
