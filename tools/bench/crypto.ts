/**
 * Figure 8 — the cost of security: the handshake of a known client (connect, signed challenge/hello/
 * welcome, X25519 key agreement, resume by cursor, live) against a raw WebSocket connect plus one round
 * trip; the per-frame cost of sealing and opening a 200-byte frame against the raw round trip; and the
 * primitives behind them (Ed25519 sign and verify, X25519), which are kept off the per-change path.
 */
import nacl from 'tweetnacl';
import { WebSocket, WebSocketServer } from 'ws';
import { ephemeralKeyPair, SecureChannel } from '../../protocol/secure.js';
import { joinAs, openAgent, openServer } from './agents.js';
import type { Ctx } from './context.js';
import { row } from './report.js';
import { fmtMs, now, summarize } from './stats.js';

async function rawConnect(samples: number): Promise<ReturnType<typeof summarize>> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wss.on('connection', (ws) => ws.on('message', (d: Buffer) => ws.send(d)));
  const port = (wss.address() as { port: number }).port;
  const times: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = now();
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => ws.send(Buffer.alloc(200)));
        ws.once('message', () => resolve());
        ws.once('error', reject);
      });
      times.push(now() - t0);
      ws.terminate();
    }
  } finally {
    await new Promise<void>((r) => wss.close(() => r()));
  }
  return summarize(times);
}

/** The two ends of a session's sealed channel, keyed as a handshake keys them: what one seals, the other opens. */
export function channelPair(): { tx: SecureChannel; rx: SecureChannel } {
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  return { tx: SecureChannel.derive('server', s, c.publicKey, [Buffer.from('bench')]), rx: SecureChannel.derive('client', c, s.publicKey, [Buffer.from('bench')]) };
}

function perCall(n: number, f: () => void): number {
  const t0 = now();
  for (let i = 0; i < n; i++) f();
  return (now() - t0) / n;
}

/** Runs figure 8. */
export async function crypto(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  const section = 'security: handshake and per-frame crypto';
  try {
    // Per-frame cost: seal + open of a 200-byte frame.
    const { tx, rx } = channelPair();
    const frame = new Uint8Array(200).fill(7);
    const frames = ctx.quick ? 5_000 : 20_000;
    perCall(500, () => rx.open(tx.seal(frame)));
    const sealOpen = perCall(frames, () => rx.open(tx.seal(frame)));
    const rtt = ctx.base.rtt.p50;
    ctx.rows.push(row({ section, figure: 'seal + open, 200-byte frame', value: sealOpen, unit: 'ms', baseline: { value: rtt, unit: 'ms', label: 'ws RTT p50' }, target: { on: 'ratio', limit: 0.5, text: 'small beside a round trip' } }));
    ctx.rows.push(row({ section, figure: 'bytes added per frame (Poly1305 tag)', value: nacl.secretbox.overheadLength, unit: 'bytes' }));

    // The primitives, for the notes.
    const id = nacl.sign.keyPair();
    const msg = new Uint8Array(64);
    const sig = nacl.sign.detached(msg, id.secretKey);
    const sign = perCall(ctx.quick ? 20 : 100, () => nacl.sign.detached(msg, id.secretKey));
    const verify = perCall(ctx.quick ? 20 : 100, () => nacl.sign.detached.verify(msg, sig, id.publicKey));
    const [c, s] = [ephemeralKeyPair(), ephemeralKeyPair()];
    const x25519 = perCall(ctx.quick ? 20 : 100, () => nacl.box.before(s.publicKey, c.secretKey));

    // Handshake of a known client, resuming by cursor.
    const server = await openServer(scope, ctx.tmp, { name: 'hs-s' });
    const a = await openAgent(scope, ctx.tmp, { name: 'hs-a' });
    await joinAs(a, server.port);
    await a.setRole('standalone');
    const samples = ctx.quick ? 20 : 100;
    const times: number[] = [];
    for (let i = 0; i < samples + 5; i++) {
      const client = await a.createClient({ host: '127.0.0.1', port: server.port });
      const t0 = now();
      await client.admit(undefined);
      if (i >= 5) times.push(now() - t0);
      await client.stop();
    }
    const hs = summarize(times);
    const raw = await rawConnect(samples);
    ctx.rows.push(row({ section, figure: `handshake of a known client to live, p50 (${hs.n})`, value: hs.p50, unit: 'ms', baseline: { value: raw.p50, unit: 'ms', label: 'raw ws connect + 1 round trip p50' } }));
    ctx.rows.push(row({ section, figure: `  p99`, value: hs.p99, unit: 'ms', baseline: { value: raw.p99, unit: 'ms', label: 'raw ws connect + 1 round trip p99' } }));
    ctx.notes.push(
      `security: per-frame seal+open ${(sealOpen * 1000).toFixed(1)} µs for 200 bytes (${frames} frames); primitives: Ed25519 sign ${fmtMs(sign)}, verify ${fmtMs(verify)}, ` +
        `X25519 agreement ${fmtMs(x25519)}. A handshake does 2 signs, 2 verifies and 2 agreements (plus scrypt on a first admission, not measured here); ` +
        'no signature is made per change.',
    );
  } finally {
    await scope.run();
  }
}
