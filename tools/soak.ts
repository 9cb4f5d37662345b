/**
 * `npm run soak`: the fault-injecting soak (issue 6). A server, N clients and a replica run as real
 * processes, clients behind the project's fault proxy, with random user activity and a seeded schedule
 * of faults; at the end it checks that nothing acknowledged was lost, the group converged, nothing was
 * applied twice, every lost edit is in a conflict log and no process grew without bound.
 *
 *   node dist/tools/soak.js [--seed N] [--duration 90s|10m] [--clients 9] [--json] [--plan-only]
 */
import { Command } from 'commander';
import { converge, runChecks, type CheckResult } from './soak/checks.js';
import { parseDuration, planFaults, plannedKinds } from './soak/plan.js';
import { buildReport, printReport } from './soak/report.js';
import { Scenario } from './soak/scenario.js';
import { tmpfsUnavailable } from './tmpfs.js';

interface Cli {
  seed?: string;
  duration: string;
  clients: string;
  json?: boolean;
  planOnly?: boolean;
  convergeDeadline: string;
}

/** Allowed RSS growth from the warm-up plateau to the end: the 10 % for long runs. */
function rssLimit(durationMs: number): number {
  // A short run's processes are still filling caches and V8's heap is not settled after a minute:
  // 10 % of ~60 MB is within one GC's swing. Ten minutes and more: the bound.
  return durationMs >= 300_000 ? 0.1 : 0.3;
}

async function main(): Promise<number> {
  const program = new Command('soak')
    .option('--seed <n>', 'seed of the fault schedule and the activity (default: random)')
    .option('--duration <d>', 'how long activity and faults run (90s, 10m)', '90s')
    .option('--clients <n>', 'number of clients (1-9; the server and the group make 10 machines)', '9')
    .option('--converge-deadline <d>', 'how long the group may take to converge once faults stop', '120s')
    .option('--json', 'one JSON report on stdout')
    .option('--plan-only', 'print the fault schedule of the seed and exit')
    .parse();
  const cli = program.opts<Cli>();
  const seed = cli.seed !== undefined ? Number(cli.seed) >>> 0 : Math.floor(Math.random() * 2 ** 31);
  const durationMs = parseDuration(cli.duration);
  const clients = Number(cli.clients);
  if (!Number.isInteger(clients) || clients < 1 || clients > 9) throw new TypeError('--clients must be 1-9');
  const replay = `replay: npm run soak -- --seed ${seed} --duration ${cli.duration} --clients ${clients}`;
  // Disk-full faults need a tmpfs, which needs root: where none can be mounted, none is planned.
  const noTmpfs = await tmpfsUnavailable();
  const diskFull = noTmpfs === undefined ? { planned: true } : { planned: false, reason: `cannot mount a tmpfs here (${noTmpfs})` };
  const plan = planFaults({ seed, durationMs, clients, diskFull: diskFull.planned });
  if (cli.planOnly) {
    process.stdout.write(JSON.stringify({ seed, durationMs, clients, diskFull, plan }) + '\n');
    return 0;
  }
  const log = (line: string) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  log(`seed ${seed}, ${cli.duration}, ${clients} clients, ${plan.length} faults planned (${replay})`);
  if (!diskFull.planned) log(`no disk-full fault planned: ${diskFull.reason}`);
  const s = new Scenario({ seed, durationMs, clients, plan, diskFull: diskFull.planned, log });
  const stopOnSignal = () => void s.close().then(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const started = Date.now();
  let checks: CheckResult[] = [];
  let convergence: { ms: number | null; mismatches: string[] } = { ms: null, mismatches: [] };
  try {
    await s.setup();
    log(`group up in ${((Date.now() - started) / 1000).toFixed(1)} s; activity and faults for ${cli.duration}`);
    await s.run();
    log(`faults stopped (${Object.values(s.faults).reduce((a, b) => a + b, 0)} injected); waiting for convergence`);
    convergence = await converge(s, parseDuration(cli.convergeDeadline));
    await s.sampleNow();
    checks = await runChecks(s, convergence, rssLimit(durationMs));
  } catch (err) {
    checks.push({ name: 'scenario ran to the end', pass: false, detail: (err as Error).stack ?? String(err) });
  }
  const report = buildReport(s, { seed, durationMs, clients, replay, wallMs: Date.now() - started, convergence, checks, rssLimit: rssLimit(durationMs), diskFull });
  await s.close();
  const missingKinds = plannedKinds({ diskFull: diskFull.planned }).filter((k) => !report.faults.injected[k]);
  if (missingKinds.length > 0) log(`note: not injected this run: ${missingKinds.join(', ')}`);
  if (cli.json) process.stdout.write(JSON.stringify(report) + '\n');
  else printReport(report, (line) => process.stdout.write(line + '\n'));
  const failed = checks.filter((c) => !c.pass);
  if (failed.length > 0) {
    for (const c of failed) process.stderr.write(`FAIL ${c.name} (seed ${seed}): ${c.detail}\n${replay}\n`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`soak: ${err.message}\n`);
    process.exit(2);
  },
);
