/**
 * The listener's admission policy (agent/source-caps.ts) as bookkeeping: per-source caps, the
 * strangers' pool with fair-share displacement, the reserve for sources devices authenticated from,
 * and every place released exactly once whatever order close and authentication come in.
 */
import test from 'ava';
import { SourceCaps, sourceOf, type Place } from '../../agent/source-caps.js';

const limits = { connections: 12, connectionsPerSource: 6, handshakes: 4, handshakesPerSource: 3, reservedHandshakes: 2, knownSources: 2 };

/** Admits a connection; records whether (and which) connections got cut. */
function open(caps: SourceCaps, source: string, cut: string[], name = source): Place | undefined {
  return caps.admit(source, () => cut.push(name));
}

test('a source over its handshake cap is cut at once; its authenticated connections count only toward the connection caps', (t) => {
  const caps = new SourceCaps(limits);
  const cut: string[] = [];
  const places = [0, 1, 2].map(() => open(caps, 'a', cut)!);
  t.is(open(caps, 'a', cut), undefined, 'a 4th handshake from one source');
  places[0]!.authenticated();
  t.truthy(open(caps, 'a', cut), 'an authenticated connection frees a handshake place');
  // From now on the source is known: its new handshake is in the reserved share.
  t.deepEqual(caps.stats(), { connections: 4, handshakes: 2, reserved: 1, sources: 1 });
  t.deepEqual(cut, []);
});

test('a full strangers\' pool: a newcomer displaces the oldest handshake of the source holding the most, never one of its equals', (t) => {
  const caps = new SourceCaps(limits);
  const cut: string[] = [];
  open(caps, 'a', cut, 'a1');
  open(caps, 'b', cut, 'b1');
  open(caps, 'a', cut, 'a2');
  open(caps, 'a', cut, 'a3');
  t.truthy(open(caps, 'c', cut, 'c1'));
  t.deepEqual(cut, ['a1'], 'a held 3 of 4: its oldest made room');
  t.truthy(open(caps, 'd', cut, 'd1'));
  t.deepEqual(cut, ['a1', 'a2']);
  // Now a, b, c, d hold one each: a fifth source displaces the oldest of them; a holder of one does not.
  t.is(open(caps, 'b', cut, 'b2'), undefined, 'b already holds as many as anyone');
  t.truthy(open(caps, 'e', cut, 'e1'));
  t.deepEqual(cut, ['a1', 'a2', 'b1']);
  t.is(caps.stats().handshakes, 4);
});

test('sources devices authenticated from have a reserved share strangers cannot take', (t) => {
  const caps = new SourceCaps(limits);
  const cut: string[] = [];
  open(caps, 'office', cut)!.authenticated();
  for (const s of ['x', 'y', 'z', 'w']) open(caps, s, cut, s);
  t.is(caps.stats().handshakes, 4);
  const reconnect = open(caps, 'office', cut, 'office');
  t.truthy(reconnect, 'the device\'s address is let in beside a full strangers\' pool');
  t.deepEqual(cut, [], 'and displaced no stranger');
  t.deepEqual(caps.stats(), { connections: 6, handshakes: 4, reserved: 1, sources: 5 });
  // Strangers flooding their own pool never touch the reserve.
  for (const s of ['p', 'q', 'r', 's', 't']) open(caps, s, cut, s);
  t.false(cut.includes('office'));
  t.true(reconnect!.pending);
});

test('known sources are the most recent ones, up to the bound', (t) => {
  const caps = new SourceCaps(limits);
  const cut: string[] = [];
  for (const s of ['k1', 'k2', 'k3']) open(caps, s, cut)!.authenticated();
  open(caps, 'k1', cut);
  t.is(caps.stats().reserved, 0, 'k1 was forgotten: the two most recent are k2 and k3');
  open(caps, 'k3', cut);
  t.is(caps.stats().reserved, 1);
});

test('every place is released exactly once, whatever comes first', (t) => {
  const caps = new SourceCaps(limits);
  const cut: string[] = [];
  for (let i = 0; i < 200; i++) {
    const p = open(caps, 'a', cut)!;
    // A hello accepted as its connection drops: authenticated and closed in either order, closed twice.
    if (i % 2 === 0) p.authenticated();
    caps.release(p);
    p.authenticated();
    caps.release(p);
  }
  t.deepEqual(caps.stats(), { connections: 0, handshakes: 0, reserved: 0, sources: 0 });
  const held = Array.from({ length: 10 }, (_, i) => open(caps, `s${i}`, cut));
  t.is(held.filter(Boolean).length, 10);
  t.deepEqual(caps.stats(), { connections: 4, handshakes: 4, reserved: 0, sources: 4 }, 'no more than the pool holds: each newcomer displaced one');
});

test('the total of connections is a cap of its own', (t) => {
  const caps = new SourceCaps(limits);
  const cut: string[] = [];
  for (let i = 0; i < 12; i++) open(caps, `s${i}`, cut)!.authenticated();
  t.is(open(caps, 'new', cut), undefined);
});

test('IPv4-mapped IPv6 addresses count as their IPv4 source', (t) => {
  t.is(sourceOf('::ffff:127.0.0.3'), '127.0.0.3');
  t.is(sourceOf('127.0.0.3'), '127.0.0.3');
  t.is(sourceOf('FE80::1'), 'fe80::1');
  t.is(sourceOf(undefined), '?');
});
