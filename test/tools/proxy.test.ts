/**
 * The TCP fault proxy itself, on real sockets: a sink server behind it counts what arrives, so each
 * fault is checked by what a peer would see (bytes, order, timing, how the connection ended).
 */
import test from 'ava';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { FaultProxy } from '../../tools/proxy.js';

interface Sink {
  server: Server;
  port: number;
  /** Bytes received per accepted connection, in order. */
  received: Buffer[][];
  closed: Promise<void>[];
}

/** A server that keeps what each connection sends and echoes nothing. */
async function sink(t: import('ava').ExecutionContext): Promise<Sink> {
  const received: Buffer[][] = [];
  const closed: Promise<void>[] = [];
  const server = createServer((s) => {
    const parts: Buffer[] = [];
    received.push(parts);
    s.on('data', (d) => parts.push(d));
    s.on('error', () => undefined);
    closed.push(new Promise((r) => s.on('close', () => r())));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { server, port: (server.address() as { port: number }).port, received, closed };
}

async function proxyTo(t: import('ava').ExecutionContext, port: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetPort: port });
  t.teardown(() => proxy.close());
  return proxy;
}

async function dial(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  return s;
}

const payload = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const total = (parts: Buffer[] | undefined) => Buffer.concat(parts ?? []);

test('a bandwidth cap paces a connection; slicing keeps every byte in order', async (t) => {
  const s = await sink(t);
  const proxy = await proxyTo(t, s.port);
  proxy.bytesPerSecond = 50_000;
  proxy.sliceBytes = 1000;
  const c = await dial(proxy.port);
  const data = payload(20_000);
  const t0 = Date.now();
  c.write(data);
  await until(() => total(s.received[0]).length === data.length);
  const ms = Date.now() - t0;
  t.true(ms >= 350, `20,000 bytes at 50,000 B/s took ${ms} ms`);
  t.true(total(s.received[0]).equals(data));
  t.true(s.received[0]!.length >= 10, 'arrived in many small chunks');
  c.destroy();
});

test('a stall holds every byte until resume, with the connection open', async (t) => {
  const s = await sink(t);
  const proxy = await proxyTo(t, s.port);
  const c = await dial(proxy.port);
  await until(() => s.received.length === 1);
  proxy.stall();
  t.true(proxy.stalled);
  c.write(payload(300));
  await new Promise((r) => setTimeout(r, 150));
  t.is(total(s.received[0]).length, 0);
  t.is(proxy.connections, 1);
  proxy.resume();
  await until(() => total(s.received[0]).length === 300);
  t.true(total(s.received[0]).equals(payload(300)));
  c.destroy();
});

test('cutOnceAfter cuts one connection at exactly that byte offset, then later connections pass', async (t) => {
  const s = await sink(t);
  const proxy = await proxyTo(t, s.port);
  proxy.cutOnceAfter('up', 1234);
  t.true(proxy.cutPending);
  const c = await dial(proxy.port);
  const ended = new Promise<void>((r) => c.on('close', () => r()));
  c.write(payload(1000));
  c.write(payload(1000));
  await ended;
  await s.closed[0];
  t.is(total(s.received[0]).length, 1234);
  t.false(proxy.cutPending);
  proxy.cutOnceAfter('up', 10);
  proxy.cutOnceAfter('up', undefined);
  t.false(proxy.cutPending, 'disarmed');
  const d = await dial(proxy.port);
  d.write(payload(2000));
  await until(() => total(s.received[1]).length === 2000);
  t.pass();
  d.destroy();
});

test('resetAll ends connections with a reset; refusing closes new ones at once', async (t) => {
  const s = await sink(t);
  const proxy = await proxyTo(t, s.port);
  const c = await dial(proxy.port);
  await until(() => proxy.connections === 1);
  const error = new Promise<NodeJS.ErrnoException>((r) => c.once('error', (e) => r(e)));
  proxy.resetAll();
  t.is((await error).code, 'ECONNRESET');
  t.is(proxy.connections, 0);
  proxy.refusing = true;
  const d = connect(proxy.port, '127.0.0.1');
  d.on('error', () => undefined);
  await new Promise<void>((r) => d.on('close', () => r()));
  t.is(s.received.length, 1, 'the refused connection never reached the server');
});
