/**
 * The sealed session (protocol/secure.ts): a replay — sealed bytes the receiving side already accepted,
 * offered to it again — is refused with FRAME_TAMPERED, at once or any number of frames later, within
 * the session or into another one, and reflected back to its sender; the session goes on after each
 * refusal. (The fuzz test's reordering offers frame n+1 where n is expected: a frame never opened.)
 */
import test, { type ExecutionContext } from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { ephemeralKeyPair, SecureChannel } from '../../protocol/secure.js';

/** Both ends of one session, derived as the handshake derives them. */
function session(): { client: SecureChannel; server: SecureChannel } {
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  const transcript = [Buffer.from('challenge frame'), Buffer.from('hello body')];
  return { client: SecureChannel.derive('client', c, s.publicKey, transcript), server: SecureChannel.derive('server', s, c.publicKey, transcript) };
}

const frame = (i: number) => Buffer.from(`frame ${i}: changes of user ${i}`);

/** Asserts that opening `sealed` is refused as FRAME_TAMPERED, naming the frame the receiver expects. */
function refused(t: ExecutionContext, receiver: SecureChannel, sealed: Uint8Array, expected: number, label: string): void {
  const before = receiver.counts.received;
  const err = t.throws(() => receiver.open(sealed), { instanceOf: MfpError }, label);
  t.is(err?.code, 'FRAME_TAMPERED', label);
  t.is(err?.message, `frame ${expected} failed authentication: it was altered, replayed, reordered or truncated`, label);
  t.is(receiver.counts.received, before, `${label}: a refused frame does not move the counter`);
}

test('a frame the server accepted, offered to it again at once, is FRAME_TAMPERED; the next frame still opens', (t) => {
  const { client, server } = session();
  const first = client.seal(frame(0));
  const second = client.seal(frame(1));
  t.deepEqual(Buffer.from(server.open(first)), frame(0));
  refused(t, server, first, 1, 'frame 0 again');
  // The same bytes once more, and a copy of them (not the same buffer): still refused.
  refused(t, server, first, 1, 'frame 0 a third time');
  refused(t, server, Uint8Array.from(first), 1, 'a copy of frame 0');
  t.deepEqual(Buffer.from(server.open(second)), frame(1));
  t.deepEqual(server.counts, { sent: 0, received: 2 });
});

test('every frame the server accepted is refused when replayed later, however many frames later', (t) => {
  const { client, server } = session();
  const sealed = Array.from({ length: 20 }, (_, i) => client.seal(frame(i)));
  for (let k = 0; k < sealed.length; k++) {
    t.deepEqual(Buffer.from(server.open(sealed[k]!)), frame(k));
    // Each frame opened so far, replayed while frame k+1 is expected.
    for (let j = 0; j <= k; j++) refused(t, server, sealed[j]!, k + 1, `frame ${j} replayed after frame ${k}`);
  }
  t.is(server.counts.received, 20);
});

test('the client refuses a replay of a frame of the server just the same', (t) => {
  const { client, server } = session();
  const welcomeNext = server.seal(frame(0));
  t.deepEqual(Buffer.from(client.open(welcomeNext)), frame(0));
  refused(t, client, welcomeNext, 1, 'server frame 0 again');
  t.deepEqual(Buffer.from(client.open(server.seal(frame(1)))), frame(1));
});

test('a frame recorded in one session and replayed into another, at the same counter, is FRAME_TAMPERED', (t) => {
  const recorded = session();
  const sealed = recorded.client.seal(frame(0));
  t.deepEqual(Buffer.from(recorded.server.open(sealed)), frame(0));
  const next = session();
  refused(t, next.server, sealed, 0, 'frame 0 of an earlier session');
  t.deepEqual(Buffer.from(next.server.open(next.client.seal(frame(0)))), frame(0));
});

test('a frame reflected back to its sender is FRAME_TAMPERED: each direction has its own key', (t) => {
  const { client, server } = session();
  const toServer = client.seal(frame(0));
  t.deepEqual(Buffer.from(server.open(toServer)), frame(0));
  // The server's next incoming frame would be 1; its own frame 0 came back to it instead.
  const fromServer = server.seal(frame(0));
  refused(t, server, fromServer, 1, 'the server\'s own frame');
  refused(t, client, toServer, 0, 'the client\'s own frame');
  t.deepEqual(Buffer.from(client.open(fromServer)), frame(0));
});
