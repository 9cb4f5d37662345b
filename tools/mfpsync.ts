#!/usr/bin/env node
/** The technician shell: `mfpsync COMMAND`. Each command lives in tools/commands/, one file each. */
import { Command, CommanderError } from 'commander';
import { MfpError } from '../protocol/errors.js';
import { register as backup } from './commands/backup.js';
import { register as conflicts } from './commands/conflicts.js';
import { register as devices } from './commands/devices.js';
import { register as exportCommand } from './commands/export.js';
import { register as importCommand } from './commands/import.js';
import { register as init } from './commands/init.js';
import { register as items } from './commands/items.js';
import { register as log } from './commands/log.js';
import { register as login } from './commands/login.js';
import { register as power } from './commands/power.js';
import { register as recover } from './commands/recover.js';
import { register as replication } from './commands/replication.js';
import { register as role } from './commands/role.js';
import { register as run } from './commands/run.js';
import { register as settings } from './commands/settings.js';
import { register as sharing } from './commands/sharing.js';
import { register as sim } from './commands/sim.js';
import { register as status } from './commands/status.js';
import { register as users } from './commands/users.js';
import { printError } from './shell.js';

const program = new Command('mfpsync')
  .description('keeps MFP users\' personalized data in sync across a group of machines')
  .option('--data <dir>', 'data directory (default $MFPSYNC_DATA, else ./.mfpsync)')
  .option('--json', 'print one JSON document on stdout')
  .showHelpAfterError(false)
  .exitOverride();
// Commander's own error lines are replaced by coded ones (below); what it writes is kept only for the
// help a group prints when called without a subcommand.
let written = '';
program.configureOutput({ writeErr: (s) => void (written += s) });

for (const register of [init, run, status, role, login, items, users, devices, sharing, exportCommand, importCommand, replication, recover, backup, power, conflicts, log, settings, sim]) register(program);
for (const cmd of program.commands) {
  cmd.exitOverride();
  for (const sub of cmd.commands) sub.exitOverride();
}

// No top-level await: the shipped shell is this module bundled as CommonJS (tools/bundle.ts).
async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) process.exit(0);
      // `mfpsync role` (a group, no subcommand): its help, as `mfpsync role --help` prints it.
      if (err.code === 'commander.help') {
        process.stdout.write(written);
        process.exit(0);
      }
      const message = err.message.replace(/^error: /, '');
      process.exitCode = printError(new MfpError('USAGE', message), process.argv.includes('--json'));
    } else {
      process.exitCode = printError(err, process.argv.includes('--json'));
    }
  }
}

void main();
