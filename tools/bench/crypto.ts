/**
 * Figure 8 — the cost of security: the handshake of a known client (connect, signed challenge/hello/
 * welcome, X25519 key agreement, resume by cursor, live) against a raw WebSocket connect plus one round
 * trip; the per-frame cost of sealing and opening a 200-byte frame against the raw round trip; and the
 * primitives behind them (Ed25519 sign and verify, X25519), which are kept off the per-change path.
 */
import nacl from 'tweetnacl';
import { WebSocket, WebSocketServer } from 'ws';
import { PROTOCOL_VERSION } from '../../protocol/limits.js';
import { CIPHERS, ephemeralKeyPair, SEAL_OVERHEAD, SecureChannel, sessionCipher, type Cipher } from '../../protocol/secure.js';
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
export function channelPair(cipher: Cipher = sessionCipher(PROTOCOL_VERSION)): { tx: SecureChannel; rx: SecureChannel } {
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  return { tx: SecureChannel.derive('server', s, c.publicKey, [Buffer.from('bench')], cipher), rx: SecureChannel.derive('client', c, s.publicKey, [Buffer.from('bench')], cipher) };
}

/** Seal + open of one frame of `bytes` with `cipher`, per call (ms). */
function sealOpenCost(cipher: Cipher, bytes: number, frames: number): number {
  const { tx, rx } = channelPair(cipher);
  const frame = new Uint8Array(bytes).fill(7);
  perCall(Math.max(5, frames / 10), () => rx.open(tx.seal(frame)));
  return perCall(frames, () => rx.open(tx.seal(frame)));
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
    // Per-frame cost: seal + open of a live change's frame and of a snapshot's, in both suites (the
    // session's own, ChaCha20-Poly1305 through OpenSSL, and tweetnacl's, which older peers get).
    const frames = ctx.quick ? 5_000 : 20_000;
    const rtt = ctx.base.rtt.p50;
    const cost: Record<string, number> = {};
    for (const cipher of CIPHERS) {
      const small = sealOpenCost(cipher, 200, frames);
      const large = sealOpenCost(cipher, 256 * 1024, ctx.quick ? 40 : 200);
      cost[cipher] = large;
      ctx.rows.push(row({ section, figure: `seal + open, 200-byte frame, ${cipher}`, value: small, unit: 'ms', baseline: { value: rtt, unit: 'ms', label: 'ws RTT p50' }, target: { on: 'ratio', limit: 0.5, text: 'small beside a round trip' } }));
      ctx.rows.push(row({ section, figure: `seal + open, 256 KiB frame, ${cipher}: MB/s`, value: (256 * 1024) / 1e6 / (large / 1000), unit: 'count' }));
    }
    const sealOpen = sealOpenCost(sessionCipher(PROTOCOL_VERSION), 200, frames);
    ctx.rows.push(row({ section, figure: 'bytes added per frame (Poly1305 tag)', value: SEAL_OVERHEAD, unit: 'bytes' }));

    // The primitives, for the notes.
    const id = nacl.sign.keyPair();
    const msg = new Uint8Array(64);
    const sig = nacl.sign.detached(msg, id.secretKey);
    const sign = perCall(ctx.quick ? 20 : 100, () => nacl.sign.detached(msg, id.secretKey));
    const verify = perCall(ctx.quick ? 20 : 100, () => nacl.sign.detached.verify(msg, sig, id.publicKey));
    const [c, s] = [ephemeralKeyPair(), ephemeralKeyPair()];
    const x25519 = perCall(ctx.quick ? 20 : 100, () => SecureChannel.derive('client', c, s.publicKey, [msg], 'chacha20-poly1305'));
    const x25519Nacl = perCall(ctx.quick ? 20 : 100, () => nacl.box.before(nacl.box.keyPair().publicKey, nacl.box.keyPair().secretKey));

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
      `security: per-frame seal+open ${(sealOpen * 1000).toFixed(1)} µs for 200 bytes (${frames} frames, ${sessionCipher(PROTOCOL_VERSION)}); a 256 KiB snapshot frame ` +
        `${fmtMs(cost['chacha20-poly1305']!)} with ChaCha20-Poly1305 (OpenSSL), ${fmtMs(cost['xsalsa20-poly1305']!)} with XSalsa20-Poly1305 (tweetnacl); primitives: Ed25519 sign ${fmtMs(sign)}, verify ${fmtMs(verify)} (tweetnacl), ` +
        `X25519 agreement + key derivation ${fmtMs(x25519)} (OpenSSL; tweetnacl's pair + agreement ${fmtMs(x25519Nacl)}). A handshake does 2 signs, 2 verifies and 2 agreements (plus scrypt on a first admission, not measured here); ` +
        'no signature is made per change.',
    );
  } finally {
    await scope.run();
  }
}
