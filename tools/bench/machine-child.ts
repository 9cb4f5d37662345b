/**
 * One benchmark machine: an agent in a process of its own, as on a real MFP, driven by its parent over
 * the IPC channel (see machines.ts). Nothing the figures time crosses that channel: a change is stamped
 * here, just before `setItem`, with the system-wide monotonic clock, and the machine that receives it
 * stamps its arrival with the same clock, so the two stamps compare across processes.
 */
import type { Agent } from '../../agent/agent.js';
import type { Durability } from '../../storage/store.js';
import { keepYoungGenerationSmall } from '../../agent/heap.js';
import { joinAs, openAgent, queueDrained, remoteChanges } from './agents.js';
import { Cleanup } from './cleanup.js';
import { hrNow } from './stats.js';
import type { MachineReply, MachineRequest } from './machines.js';

keepYoungGenerationSmall();
const cleanup = new Cleanup();
let agent: Agent | undefined;
/** Arrival latencies of remote changes stamped by their writer (ms), while tracking. */
let latencies: number[] = [];
let tracking = false;
let commits: number[] = [];
let writer: { timer: NodeJS.Timeout; sent: number; failed: number; pending: Set<Promise<unknown>> } | undefined;

function need(): Agent {
  if (!agent) throw new Error('no agent open');
  return agent;
}

function reply(r: MachineReply): void {
  process.send!(r);
}

async function handle(m: MachineRequest): Promise<unknown> {
  switch (m.op) {
    case 'open': {
      agent = await openAgent(cleanup, m.parent, { name: m.name, durability: m.durability as Durability });
      const a = agent;
      a.on('item-changed', (e) => {
        if (e.source !== 'remote' || !tracking) return;
        // The writer stamped the value; reading it back is this machine's work, after the arrival stamp.
        const at = hrNow();
        void a.getItems(e.kind, e.id, e.item).then((r) => {
          const t = (r.items[e.item]?.value as { t?: number } | undefined)?.t;
          if (typeof t === 'number') latencies.push(at - t);
        }, () => undefined);
      });
      return { port: a.status().port ?? 0 };
    }
    case 'server': {
      const a = need();
      await a.setRole('server');
      a.group!.onCommit(() => {
        if (tracking) commits.push(hrNow());
      });
      return { port: a.status().port };
    }
    case 'join':
      await joinAs(need(), m.port);
      return {};
    case 'seed': {
      const a = need();
      for (const u of m.users) for (const item of m.items) await a.setItem('user', u, item, { t: 0 });
      return { seq: a.group?.seq ?? 0 };
    }
    case 'login': {
      const a = need();
      const got = remoteChanges(a, m.users, m.items[0]!);
      for (const u of m.users) await a.login(u);
      await got;
      return {};
    }
    case 'track': {
      // Answers what was collected since the last call, and starts (or stops) collecting afresh.
      const out = { seq: agent?.group?.seq ?? 0, latencies, commits };
      tracking = m.on;
      latencies = [];
      commits = [];
      return out;
    }
    case 'write': {
      // Open-loop writer: `rate` changes per second for `ms`, not waiting for any of them.
      const a = need();
      const w = { timer: undefined as unknown as NodeJS.Timeout, sent: 0, failed: 0, pending: new Set<Promise<unknown>>() };
      writer = w;
      const start = hrNow();
      const step = () => {
        const due = Math.min(Math.floor(((hrNow() - start) / 1000) * m.rate), Math.floor((m.ms / 1000) * m.rate));
        while (w.sent < due) {
          const i = w.sent++;
          const p = a.setItem('user', m.users[i % m.users.length]!, m.items[Math.floor(i / m.users.length) % m.items.length]!, { n: i, t: hrNow() });
          w.pending.add(p);
          void p.then(() => w.pending.delete(p), () => {
            w.failed++;
            w.pending.delete(p);
          });
        }
      };
      w.timer = setInterval(step, 5);
      await new Promise((r) => setTimeout(r, m.ms));
      step();
      clearInterval(w.timer);
      await Promise.all(w.pending);
      await queueDrained(a);
      writer = undefined;
      return { sent: w.sent, failed: w.failed };
    }
    case 'close':
      if (writer) clearInterval(writer.timer);
      await cleanup.run();
      agent = undefined;
      return {};
  }
}

process.on('message', (m: MachineRequest) => {
  handle(m).then(
    (result) => reply({ id: m.id, result }),
    (err: unknown) => reply({ id: m.id, error: (err as Error).stack ?? String(err) }),
  );
});
process.on('disconnect', () => {
  void cleanup.run().finally(() => process.exit(0));
});
