/** `mfpsync login USER` / `mfpsync logout USER`: what the firmware reports when a user logs in or out. */
import type { Command } from 'commander';
import { action, control, print, type ShellContext } from '../shell.js';

/** Reports a login or logout to the agent. */
export async function collectLogin(ctx: ShellContext, user: string, loggedIn: boolean): Promise<unknown> {
  return control(ctx, loggedIn ? 'login' : 'logout', { user });
}

export function register(program: Command): void {
  for (const [name, loggedIn] of [['login', true], ['logout', false]] as const) {
    program
      .command(name)
      .argument('<user>')
      .description(loggedIn ? 'a user logged in: fetch their current data from the server' : 'a user logged out')
      .action(action(async (ctx, user: string) => print(ctx, await collectLogin(ctx, user, loggedIn), () => `${user} logged ${loggedIn ? 'in' : 'out'}`)));
  }
}
