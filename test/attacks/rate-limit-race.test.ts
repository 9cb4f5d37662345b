/**
 * Racing the rate limit. The attacker opens many connections, takes each challenge, builds a hello
 * with a guessed administrator password for each, holds them all and releases them in one burst, round
 * after round — from one source address, then from eight (127.0.0.2–127.0.0.9) against one account.
 * What must hold (SPEC §6): however many guesses arrive at once, at most 5 wrong passwords per source
 * address and per account are checked in the window (the others are AUTH_LOCKED without being
 * checked), and the right password, held among them or sent after the lock, is refused while locked.
 * A real server process; what it checked is counted both from the answers and from its sync log.
 */
import test from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { AUTH_FAILURES_BEFORE_LOCK, MAX_PENDING_HANDSHAKES_PER_SOURCE } from '../../protocol/limits.js';
import { startServer, type AgentProcess } from '../helpers/agents.js';
import { RawPeer } from '../helpers/raw-peer.js';

const RIGHT = 'secret-pw';

/** One guess per source, all held until every connection has its challenge, then sent in one burst; the answers' codes ('welcome' if admitted). */
async function burst(port: number, guesses: { from: string; password: string }[]): Promise<string[]> {
  const peers = await Promise.all(guesses.map((g) => RawPeer.open({ port, localAddress: g.from, timeoutMs: 30_000 })));
  // Built first (each proof costs an scrypt), sent together: the server sees them all before answering any.
  const frames = peers.map((p, i) => p.buildHello({ admission: { user: 'admin', password: guesses[i]!.password } }).frame);
  peers.forEach((p, i) => p.ws.send(frames[i]!));
  const answers = await Promise.all(peers.map((p) => p.receive().then((m) => (m.type === 'welcome' ? 'welcome' : m.type), (e: MfpError) => e.code)));
  // A refused peer is closed by the server; the next burst waits for that, so that it finds the
  // listener's places free again (the listener caps how many one address holds).
  peers.forEach((p, i) => answers[i] === 'welcome' && p.terminate());
  await Promise.all(peers.map((p) => p.closed));
  return answers;
}

/** How many administrator passwords the server says it checked and found wrong. */
async function checkedWrong(server: AgentProcess): Promise<number> {
  const { entries } = await server.ok<{ entries: { code: string }[] }>('log', '--level', 'error');
  return entries.filter((e) => e.code === 'AUTH_INCORRECT').length;
}

const count = (answers: string[], code: string) => answers.filter((a) => a === code).length;

test('guesses at once from one source, in rounds: 5 are checked, the rest and the right password are AUTH_LOCKED', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  const from = '127.0.0.3';
  // As many at once as the listener lets one address hold in its handshake.
  const size = MAX_PENDING_HANDSHAKES_PER_SOURCE;
  // 50 attempts, the right password as the 21st, held among wrong ones.
  const attempts = Array.from({ length: 50 }, (_, i) => ({ from, password: i === 20 ? RIGHT : `guess-${i}` }));
  const rounds = Array.from({ length: Math.ceil(attempts.length / size) }, (_, r) => attempts.slice(r * size, (r + 1) * size));
  const answers: string[] = [];
  for (const [i, round] of rounds.entries()) {
    const got = await burst(port, round);
    t.log(`round ${i + 1}: ${count(got, 'AUTH_INCORRECT')} checked (AUTH_INCORRECT), ${count(got, 'AUTH_LOCKED')} AUTH_LOCKED, ${count(got, 'welcome')} admitted`);
    answers.push(...got);
  }
  t.is(count(answers, 'welcome'), 0, 'nobody was admitted');
  t.is(count(answers, 'AUTH_INCORRECT'), AUTH_FAILURES_BEFORE_LOCK, 'wrong passwords checked');
  t.is(count(answers, 'AUTH_LOCKED'), answers.length - AUTH_FAILURES_BEFORE_LOCK);
  t.is(answers[20], 'AUTH_LOCKED', 'the right password at attempt 21 was refused unchecked');
  t.is(await checkedWrong(server), AUTH_FAILURES_BEFORE_LOCK, 'the server logged as many failed checks');
  // After the bursts, the right password alone is still refused: the address and the account are locked.
  t.deepEqual(await burst(port, [{ from, password: RIGHT }]), ['AUTH_LOCKED']);
  t.deepEqual(await burst(port, [{ from: '127.0.0.4', password: RIGHT }]), ['AUTH_LOCKED'], 'the account is locked from any address');
  t.is((await server.ok<{ devices: unknown[] }>('devices', 'list')).devices.length, 1, 'no device was admitted');
});

test('one account guessed from eight addresses at once: 5 are checked, then the right password is AUTH_LOCKED from anywhere', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  const sources = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
  const answers: string[] = [];
  for (let round = 0; round < 2; round++) {
    // Two guesses from each address per round: no address reaches its own limit, the account does.
    answers.push(...(await burst(port, sources.flatMap((from, i) => [0, 1].map((k) => ({ from, password: `guess-${round}-${i}-${k}` }))))));
  }
  t.log(`${count(answers, 'AUTH_INCORRECT')} checked, ${count(answers, 'AUTH_LOCKED')} AUTH_LOCKED of ${answers.length}`);
  t.is(count(answers, 'AUTH_INCORRECT'), AUTH_FAILURES_BEFORE_LOCK);
  t.is(count(answers, 'AUTH_LOCKED'), answers.length - AUTH_FAILURES_BEFORE_LOCK);
  t.is(await checkedWrong(server), AUTH_FAILURES_BEFORE_LOCK);
  t.deepEqual(await burst(port, [{ from: '127.0.0.10', password: RIGHT }]), ['AUTH_LOCKED'], 'a fresh address is refused: the account is locked');
});
