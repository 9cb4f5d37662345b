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
/** Remote changes that arrived while tracking: the user, the writer's change number, the arrival stamp and the writer's `setItem` stamp. */
let arrivals: Arrival[] = [];
let tracking = false;
/** The server's commits while tracking: when, and its sequence number after each. */
let commits: [number, number][] = [];
/** When each of this machine's queued changes first left for the server (entered the flow-control window), by counter. */
const sentAt = new Map<number, number>();
/** The server's version (its sequence number) of each of this machine's changes it applied, by counter. */
const versionOf = new Map<number, number>();
/** Outcomes of this machine's changes, from its acknowledgements. */
const acked = { applied: 0, duplicates: 0, conflicts: 0, rejected: 0 };
let writer: { timer: NodeJS.Timeout; sent: number; failed: number; pending: Set<Promise<unknown>>; counters: number[] } | undefined;
/** The counters of the last `write`'s changes, by change number. */
let lastCounters: number[] = [];

/** A remote change's arrival: [user, writer's change number, arrival stamp, writer's setItem stamp]. */
export type Arrival = [string, number, number, number];

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
          const v = r.items[e.item]?.value as { t?: number; n?: number } | undefined;
          if (typeof v?.t === 'number' && typeof v.n === 'number') arrivals.push([e.id, v.n, at, v.t]);
        }, () => undefined);
      });
      a.on('changes-sent', (s) => {
        const at = hrNow();
        for (const c of s.changes) if (!sentAt.has(c)) sentAt.set(c, at);
      });
      a.on('changes-acked', (s) => {
        acked.applied += s.applied;
        acked.duplicates += s.duplicates;
        acked.conflicts += s.conflicts;
        acked.rejected += s.rejected;
        for (const c of s.changes) if (c.status === 'applied' && c.v !== undefined) versionOf.set(c.c, c.v);
      });
      return { port: a.status().port ?? 0 };
    }
    case 'server': {
      const a = need();
      await a.setRole('server');
      const group = a.group!;
      group.onCommit(() => {
        if (tracking) commits.push([hrNow(), group.seq]);
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
      const cpu = process.cpuUsage();
      const out = { seq: agent?.group?.seq ?? 0, arrivals, commits, queued: agent?.local.queueSize ?? 0, cpuMs: (cpu.user + cpu.system) / 1000 };
      tracking = m.on;
      arrivals = [];
      commits = [];
      return out;
    }
    case 'write': {
      // Open-loop writer: `rate` changes per second for `ms`, not waiting for any of them.
      const a = need();
      const w = { timer: undefined as unknown as NodeJS.Timeout, sent: 0, failed: 0, pending: new Set<Promise<unknown>>(), counters: [] as number[] };
      writer = w;
      const start = hrNow();
      const step = () => {
        const due = Math.min(Math.floor(((hrNow() - start) / 1000) * m.rate), Math.floor((m.ms / 1000) * m.rate));
        while (w.sent < due) {
          const i = w.sent++;
          const p = a.setItem('user', m.users[i % m.users.length]!, m.items[Math.floor(i / m.users.length) % m.items.length]!, { n: i, t: hrNow() });
          w.pending.add(p);
          void p.then((r) => {
            if (r.change !== undefined) w.counters[i] = r.change;
            w.pending.delete(p);
          }, () => {
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
      // The offered load is over; what the server has not acknowledged waits in the durable queue.
      writer = undefined;
      lastCounters = w.counters;
      const cpu = process.cpuUsage();
      return { sent: w.sent, failed: w.failed, end: hrNow(), queued: a.local.queueSize, cpuMs: (cpu.user + cpu.system) / 1000 };
    }
    case 'drain': {
      // Until the server has acknowledged every queued change: when, the outcomes, and for each change
      // of the last write (by change number) when it first left for the server and its server version.
      const a = need();
      await queueDrained(a);
      const at = hrNow();
      // Acknowledgements settled in the same batch as the one that emptied the queue report their
      // outcomes in the same turn: counted before answering.
      await new Promise((r) => setImmediate(r));
      return { at, acked: { ...acked }, wire: lastCounters.map((c) => [sentAt.get(c) ?? Number.NaN, versionOf.get(c) ?? 0]) };
    }
    case 'values': {
      // The change number each user's items hold here (the server: the group's copy).
      const a = need();
      const out: Record<string, Record<string, number | null>> = {};
      for (const u of m.users) {
        const r = await a.getItems('user', u);
        out[u] = Object.fromEntries(m.items.map((n) => [n, (r.items[n]?.value as { n?: number } | undefined)?.n ?? null]));
      }
      return out;
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
