/**
 * Figures 5 and 6 — memory and start time of an agent as a child process.
 *
 * Memory: RSS (VmRSS of /proc/PID/status) of `mfpsync run` idle after its ready line; then as a server
 * holding 1,000 users with realistic records (populated through the control socket, `item.set`, as a
 * technician's tool would); then with clients connected (in-process clients that join and log users
 * in). Each is read half a second after the step and, in a full run, again once V8 has given back what
 * it could (see settledRss). Baseline: RSS of a bare Node.js process idling.
 * Start: spawn → ready line of an agent whose persisted role is server and whose store holds the 1,000
 * users. Baseline: spawn → first line of a bare Node.js process.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { initDataDir } from '../../agent/config.js';
import { callControl } from '../../agent/control.js';
import { ensureCertificate } from '../../agent/remote-ui/certificate.js';
import { joinAs, openAgent, PASSWORD, remoteChanges } from './agents.js';
import { freePort } from '../fleet.js';
import { memoryOf, settledRss, spawnAgent, spawnBareNode, type Child } from './children.js';
import type { Ctx } from './context.js';
import { userNames, userRecord } from './records.js';
import { row, type Row } from './report.js';
import { fmtBytes, fmtMs, median } from './stats.js';

const MB = 1024 * 1024;
const FIRST_READ_MS = 500;
const SETTLE_WINDOW_MS = 20_000;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `task` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Milliseconds from sending the first request to a Remote UI until its answer ended. */
function timeFirstRequest(port: number, ca: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/session', ca, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t0));
    });
    req.on('error', reject).end();
  });
}

/** Runs figures 5 and 6. */
export async function memoryAndStart(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  try {
    // Baselines: a bare node process.
    const bareStarts: number[] = [];
    let bareRss = 0;
    for (let i = 0; i < ctx.sizes.startRuns; i++) {
      const bare = await spawnBareNode(scope);
      bareStarts.push(bare.readyMs);
      if (i === 0) {
        await pause(FIRST_READ_MS);
        bareRss = memoryOf(bare.proc.pid!).rss;
      }
      await bare.stop();
    }
    const bareStart = median(bareStarts);
    ctx.baselineLines.push({
      name: 'bare Node.js process',
      text: `spawn → first stdout line ${fmtMs(bareStart)} (median of ${bareStarts.length}); RSS idle ${fmtBytes(bareRss)}`,
      values: { startMs: bareStart, rssBytes: bareRss },
    });
    const section = 'memory of `mfpsync run` (RSS, child process)';
    const peaks: string[] = [];
    /** Reads RSS now (after FIRST_READ_MS) and, in a full run, settled; one row each. */
    const measure = async (child: Child, figure: string, limitMb: number): Promise<void> => {
      await pause(FIRST_READ_MS);
      const target = { on: 'value' as const, limit: limitMb * MB, text: `≤ ${limitMb} MB` };
      const baseline = { value: bareRss, unit: 'bytes' as const, label: 'bare node RSS' };
      const rows: Row[] = [];
      if (ctx.quick) {
        rows.push(row({ section, figure, value: memoryOf(child.proc.pid!).rss, unit: 'bytes', baseline, target }));
      } else {
        const r = await settledRss(child.proc.pid!, { windowMs: SETTLE_WINDOW_MS });
        rows.push(row({ section, figure: `${figure}, at once`, value: r.first, unit: 'bytes', baseline, target }));
        const when = r.settled < r.first ? `+${(r.afterMs / 1000).toFixed(1)} s` : `no drop in ${SETTLE_WINDOW_MS / 1000} s`;
        rows.push(row({ section, figure: `${figure}, settled (${when})`, value: r.settled, unit: 'bytes', baseline, target }));
      }
      ctx.rows.push(...rows);
      peaks.push(`${figure.trim()}: ${fmtBytes(memoryOf(child.proc.pid!).hwm)}`);
    };

    const dir = join(scope.tempDir(ctx.tmp, 'mem-'), 'd');
    initDataDir(dir, { name: 'mem-server', adminPassword: PASSWORD });
    // As `mfpsync init` does: the Remote UI's certificate exists before the first start.
    await ensureCertificate(dir, { name: 'mem-server' });
    const control = join(dir, 'control.sock');
    let child = await spawnAgent(scope, dir);
    const uiOffStart = child.readyMs;
    await measure(child, 'idle after ready (standalone)', 60);
    await child.stop();

    // The Remote UI on: its HTTPS listener from the start, its application (Fastify) at the first request.
    const uiPort = await freePort();
    child = await spawnAgent(scope, dir, { uiPort });
    const uiOnStart = child.readyMs;
    await measure(child, '  Remote UI on, not browsed yet', 60);
    const firstRequest = await timeFirstRequest(uiPort, readFileSync(join(dir, 'ui-cert.pem'), 'utf8'));
    await measure(child, '  Remote UI on, after its first request', 90);
    await child.stop();
    ctx.notes.push(
      `Remote UI: spawn → ready ${fmtMs(uiOffStart)} with --ui-port 0, ${fmtMs(uiOnStart)} with it on (one run each: noisy); ` +
        `its first request (GET /api/session over HTTPS, which loads Fastify and its plugins) answered in ${fmtMs(firstRequest)}.`,
    );
    child = await spawnAgent(scope, dir);

    const status = (await callControl(control, 'role.set', { role: 'server' })) as { port: number };
    const names = userNames(ctx.sizes.users, 'm');
    const writes = names.flatMap((id) => Object.entries(userRecord(id, 5)).map(([item, value]) => ({ id, item, value })));
    ctx.progress(`memory: populating the child server with ${names.length} users (${writes.length} item.set calls)`);
    await pool(writes, 32, (w) => callControl(control, 'item.set', { kind: 'user', id: w.id, item: w.item, value: w.value }));
    await measure(child, `server holding ${names.length} users`, 120);

    // Clients connected, each with users logged in (fetched and held).
    ctx.progress(`memory: ${ctx.sizes.memoryClients} client(s) join the child server`);
    const clientScope = scope.scope();
    const loginsEach = Math.min(100, names.length);
    for (let i = 0; i < ctx.sizes.memoryClients; i++) {
      const c = await openAgent(clientScope, ctx.tmp, { name: `mem-c${i}` });
      await joinAs(c, status.port);
      const users = names.slice(i * loginsEach, (i + 1) * loginsEach);
      const got = remoteChanges(c, users, 'language');
      for (const u of users) await c.login(u);
      await got;
    }
    await measure(child, `  + ${ctx.sizes.memoryClients} client(s), ${loginsEach} users logged in on each`, 120);
    await clientScope.run();
    await child.stop();

    // Start time: the server role is persisted and the store holds the users.
    ctx.progress('start: restarting the child server');
    const starts: number[] = [];
    let restartedRss = 0;
    for (let i = 0; i < ctx.sizes.startRuns; i++) {
      child = await spawnAgent(scope, dir);
      starts.push(child.readyMs);
      if (child.ready.role !== 'server') throw new Error(`restarted agent came up as ${String(child.ready.role)}, not server`);
      if (i === 0) {
        await pause(FIRST_READ_MS);
        restartedRss = memoryOf(child.proc.pid!).rss;
      }
      await child.stop();
    }
    ctx.rows.push(row({ section, figure: `server restarted with ${names.length} users, at once`, value: restartedRss, unit: 'bytes', baseline: { value: bareRss, unit: 'bytes', label: 'bare node RSS' }, target: { on: 'value', limit: 120 * MB, text: '≤ 120 MB' } }));
    const start = median(starts);
    ctx.rows.push(row({
      section: 'start time (spawn → ready line)',
      figure: `server, ${names.length} users stored (median of ${starts.length})`,
      value: start,
      unit: 'ms',
      baseline: { value: bareStart, unit: 'ms', label: 'bare node start' },
      target: { on: 'value', limit: 300, text: '≤ 300 ms' },
    }));
    ctx.notes.push(
      (ctx.quick
        ? `memory (quick run): RSS read once, ${FIRST_READ_MS} ms after each step; a full run also reads it once V8 has returned garbage. `
        : `memory: "at once" is read ${FIRST_READ_MS} ms after the step; "settled" is the lowest RSS within ${SETTLE_WINDOW_MS / 1000} s after it, ` +
          'once V8\'s memory reducer has returned garbage (no GC is forced). ') + `Peak RSS (VmHWM): ${peaks.join('; ')}.`,
    );
    ctx.notes.push(`start: runs ${starts.map((s) => fmtMs(s)).join(', ')} (min ${fmtMs(Math.min(...starts))}).`);
  } finally {
    await scope.run();
  }
}
