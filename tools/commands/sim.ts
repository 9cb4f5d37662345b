/**
 * `mfpsync sim`: a local group of N agents in this process, live. One server and N − 1 clients on
 * 127.0.0.1, each on its own temporary LevelDB folder; simulated users log in, edit and put machines
 * to sleep while the terminal shows each machine's state. Ctrl-C stops everything and removes the data.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { keepYoungGenerationSmall } from '../../agent/heap.js';
import { MfpError } from '../../protocol/errors.js';
import { action, intOption, type ShellContext } from '../shell.js';
import type { SimOptions, SimSnapshot, SimSummary } from '../sim/snapshot.js';

/** The command line's options, as commander gives them. */
interface SimArgs {
  devices: string;
  users: string;
  rate: string;
  duration?: string;
  seed?: string;
  dir?: string;
}

/** Validates the options (INVALID_ARGUMENT naming the one at fault); a missing seed is drawn at random. */
export function collectSimOptions(a: SimArgs): SimOptions {
  const parentDir = resolve(a.dir ?? tmpdir());
  if (!existsSync(parentDir) || !statSync(parentDir).isDirectory()) throw new MfpError('INVALID_ARGUMENT', `--dir ${parentDir} is not a directory`);
  return {
    devices: intOption(a.devices, '--devices', 2, 10),
    users: intOption(a.users, '--users', 1, 1000),
    rate: intOption(a.rate, '--rate', 0, 1000),
    durationS: a.duration === undefined ? undefined : intOption(a.duration, '--duration', 1, 7 * 24 * 3600),
    seed: a.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : intOption(a.seed, '--seed', 0, 2 ** 31 - 1),
    parentDir,
  };
}

/**
 * Runs a simulation: on a terminal, the live view redrawn in place; with --json or when stdout is not a
 * terminal, one JSON snapshot per line and the summary as the last line. SIGINT and SIGTERM stop it
 * cleanly; a second SIGINT while it stops forces the exit (130) after removing the data it can.
 */
export async function runSim(ctx: ShellContext, args: SimArgs): Promise<void> {
  const options = collectSimOptions(args);
  keepYoungGenerationSmall();
  // Loaded here, not at the top: every shell command (and `run`, the agent) loads this file to register
  // the command, and should not carry the simulator's code.
  const [{ Simulation }, { renderSummary, TerminalView }] = await Promise.all([import('../sim/simulation.js'), import('../sim/view.js')]);
  const json = ctx.json || process.stdout.isTTY !== true;
  const view = json ? undefined : new TerminalView(process.stdout);
  const onTick = (s: SimSnapshot) => (view ? view.draw(s) : process.stdout.write(JSON.stringify(s) + '\n'));
  const sim = new Simulation(options, onTick);
  let signals = 0;
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => () => {
    signals++;
    if (signals > 1 && signal === 'SIGINT') {
      view?.end();
      sim.removeNow();
      process.stderr.write(`\nmfpsync sim: forced out; ${existsSync(sim.dir) ? `remove ${sim.dir} by hand` : 'temporary data removed'}\n`);
      process.exit(130);
    }
    sim.stop(signal);
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  view?.begin();
  let summary: SimSummary;
  try {
    summary = await sim.run();
  } finally {
    view?.end();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    // run() removes the data; this covers a run that threw before it could.
    if (existsSync(sim.dir)) rmSync(sim.dir, { recursive: true, force: true });
  }
  process.stdout.write(json ? JSON.stringify(summary) + '\n' : `\n${renderSummary(summary)}\n`);
}

export function register(program: Command): void {
  program
    .command('sim')
    .description('a local group of N agents (1 server, N−1 clients) on loopback with simulated users, live')
    .option('--devices <n>', 'machines in all, the server included (2–10)', '4')
    .option('--users <n>', 'users loaded into the server (1–1000)', '200')
    .option('--rate <n>', 'edits per second across the fleet', '20')
    .option('--duration <seconds>', 'how long to drive activity (default: until Ctrl-C)')
    .option('--seed <n>', 'seed of the simulated activity (default: random, shown)')
    .option('--dir <dir>', 'parent of the temporary data (default: the OS temp dir; removed at the end)')
    .action(action(runSim));
}
