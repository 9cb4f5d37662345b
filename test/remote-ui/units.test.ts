/**
 * The Remote UI's parts without a server: the session table (idle expiry on the agent's clock, the
 * bound, the order of eviction), the CSRF comparison, the language choice, and the event streams'
 * bounds (per session, in all, and a reader that does not keep up).
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import test from 'ava';
import { ManualClock } from '../../agent/clock.js';
import type { AgentEventLine } from '../../agent/remote-ui/adapter.js';
import { languageOf } from '../../agent/remote-ui/app.js';
import { EventStreams, MAX_PENDING_BYTES, MAX_STREAMS, MAX_STREAMS_PER_SESSION } from '../../agent/remote-ui/events.js';
import { MAX_SESSIONS, sameToken, SESSION_IDLE_MS, SessionTable } from '../../agent/remote-ui/sessions.js';

test('a session expires after 30 minutes without a request; each request restarts the idle time', (t) => {
  const clock = new ManualClock();
  const ended: string[] = [];
  const table = new SessionTable({ clock, onEnd: (id) => ended.push(id) });
  const s = table.create('admin');
  t.regex(s.id, /^[A-Za-z0-9_-]{43}$/);
  t.not(s.csrf, s.id);
  clock.advance(SESSION_IDLE_MS - 1);
  t.is(table.touch(s.id), s);
  clock.advance(SESSION_IDLE_MS - 1);
  t.is(table.peek(s.id), s, 'a peek (an event stream) does not restart it');
  clock.advance(1);
  t.is(table.touch(s.id), undefined);
  t.deepEqual(ended, [s.id]);
  t.is(table.touch(undefined), undefined);
  t.is(table.touch('forged'), undefined);
});

test('the table holds at most 16 sessions: a new login ends the one idle the longest', (t) => {
  const clock = new ManualClock();
  const table = new SessionTable({ clock });
  const sessions = Array.from({ length: MAX_SESSIONS }, () => {
    clock.advance(1000);
    return table.create('admin');
  });
  table.touch(sessions[0]!.id);
  const extra = table.create('admin');
  t.is(table.size, MAX_SESSIONS);
  t.truthy(table.peek(sessions[0]!.id), 'used recently: kept');
  t.is(table.peek(sessions[1]!.id), undefined, 'idle the longest: ended');
  t.truthy(table.peek(extra.id));
  table.clear();
  t.is(table.size, 0);
});

test('CSRF tokens are compared whole', (t) => {
  t.true(sameToken('abc', 'abc'));
  for (const other of [undefined, '', 'ab', 'abcd', 'abd']) t.false(sameToken(other, 'abc'));
});

test('the language is the first of pl and en by weight in Accept-Language, else en', (t) => {
  t.is(languageOf('pl-PL,pl;q=0.9,en-US;q=0.8'), 'pl');
  t.is(languageOf('en-US,en;q=0.9,pl;q=0.8'), 'en');
  t.is(languageOf('de-DE, en;q=0.3, pl;q=0.7'), 'pl');
  t.is(languageOf('pl;q=0, en;q=0.1'), 'en');
  t.is(languageOf('fr'), 'en');
  t.is(languageOf(undefined), 'en');
});

/** A response as the event streams use it, that records what was written and can stop draining. */
class FakeResponse extends EventEmitter {
  written = '';
  writableLength = 0;
  destroyed = false;
  writeHead(): this {
    return this;
  }
  write(text: string): boolean {
    this.written += text;
    return true;
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

test('event streams are bounded per session and in all; a reader that lets too much pile up is dropped', (t) => {
  let listener: ((e: AgentEventLine) => void) | undefined;
  let subscriptions = 0;
  const streams = new EventStreams((onEvent) => {
    subscriptions++;
    listener = onEvent;
    return () => (listener = undefined);
  }, () => true);
  const open = (session: string) => {
    const res = new FakeResponse();
    streams.open(session, res as unknown as ServerResponse, {});
    return res;
  };
  const a = Array.from({ length: MAX_STREAMS_PER_SESSION + 1 }, () => open('a'));
  t.true(a[0]!.destroyed, 'a third stream of a session closes its oldest');
  t.false(a[1]!.destroyed);
  const others = Array.from({ length: MAX_STREAMS }, (_, i) => open(`s${i}`));
  t.is(streams.size, MAX_STREAMS);
  t.true(a[1]!.destroyed && a[2]!.destroyed, 'the oldest streams made room');
  t.is(subscriptions, 1, 'one subscription to the agent for every stream');
  listener!({ event: 'item-changed', id: '<b>x</b>' });
  t.true(others[0]!.written.endsWith('data: {"event":"item-changed","id":"<b>x</b>"}\n\n'));
  // One reader stops reading: its unsent bytes pass the limit, and it is dropped at the next event.
  others[0]!.writableLength = MAX_PENDING_BYTES + 1;
  listener!({ event: 'sync-state' });
  t.true(others[0]!.destroyed);
  t.false(others[1]!.destroyed);
  t.true(others[1]!.written.includes('"sync-state"'));
  streams.closeSession('s1');
  t.true(others[1]!.destroyed);
  streams.closeAll();
  t.is(streams.size, 0);
  t.is(listener, undefined, 'no stream left: unsubscribed');
});
