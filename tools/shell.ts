/**
 * What every shell command shares: the global options, the call to the running agent, printing
 * (`--json`: one JSON document on stdout), and the mapping of error codes to exit codes — once, here.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveDataDir, dataPaths } from '../agent/config.js';
import { callControl } from '../agent/control.js';
import { MfpError, toMfpError, type ErrorCode } from '../protocol/errors.js';

/** Global options every command sees. */
export interface ShellContext {
  dataDir: string;
  json: boolean;
}

/** Exit codes by error code; anything not listed exits 1. */
export const EXIT_CODES: Partial<Record<ErrorCode, number>> = {
  USAGE: 2,
  INVALID_ARGUMENT: 2,
  UNKNOWN_ITEM: 2,
  DATA_DIR_INVALID: 2,
  NOT_INITIALIZED: 3,
  PERMISSION_DENIED: 3,
  STORE_READ_ONLY: 3,
  AGENT_NOT_RUNNING: 3,
  AGENT_RUNNING: 3,
  AUTH_INCORRECT: 4,
  AUTH_LOCKED: 4,
  AUTH_SETTINGS_MISMATCH: 4,
  GROUP_FULL: 4,
  DEVICE_REMOVED: 4,
  DEVICE_KEY_MISMATCH: 4,
  GROUP_KEY_CHANGED: 4,
  GROUP_MISMATCH: 4,
  PROTOCOL_UNSUPPORTED: 4,
  DEST_UNSUPPORTED: 4,
  ADDRESS_INCORRECT: 5,
  SERVER_AMBIGUOUS: 5,
  CLIENTS_ACTIVE: 6,
  WRONG_ROLE: 6,
  REPLICATION_RUNNING: 6,
  STOP_REPLICATION_FIRST: 6,
  NOT_FOUND: 7,
};

/** The context of a command from its global options. */
export function contextOf(cmd: Command): ShellContext {
  const o = cmd.optsWithGlobals<{ data?: string; json?: boolean }>();
  return { dataDir: resolveDataDir(o.data), json: o.json === true };
}

/** Calls the running agent of the context's data directory. */
export function control(ctx: ShellContext, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  return callControl(dataPaths(ctx.dataDir).control, method, params);
}

/** Prints a command's result: JSON as it is, or the human form. */
export function print(ctx: ShellContext, data: unknown, human: (d: never) => string): void {
  process.stdout.write(ctx.json ? JSON.stringify(data, null, 2) + '\n' : human(data as never) + '\n');
}

/** Prints a coded error and returns the exit code. */
export function printError(err: unknown, json: boolean): number {
  const e = err instanceof TypeError ? new MfpError('INVALID_ARGUMENT', err.message) : toMfpError(err, 'CONTROL_FAILED');
  if (json) process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message } }) + '\n');
  process.stderr.write(`error ${e.code}: ${e.message}\n`);
  return EXIT_CODES[e.code] ?? 1;
}

/** Wraps a command action: errors are printed with their code and set the exit code. */
export function action<A extends unknown[]>(fn: (ctx: ShellContext, ...args: A) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const ctx = contextOf(cmd);
    try {
      await fn(ctx, ...(args.slice(0, -1) as A));
    } catch (err) {
      process.exitCode = printError(err, ctx.json);
    }
  };
}

/** Parses an integer option in [min, max]; anything else is INVALID_ARGUMENT naming the option. */
export function intOption(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new MfpError('INVALID_ARGUMENT', `${what} must be an integer in [${min}, ${max}]`);
  return n;
}

/** Parses a JSON argument, or the file named by `@PATH`; a malformed one is INVALID_ARGUMENT. */
export function parseJson(arg: string): unknown {
  let text = arg;
  if (arg.startsWith('@')) {
    try {
      text = readFileSync(arg.slice(1), 'utf8');
    } catch (err) {
      throw new MfpError('INVALID_ARGUMENT', `cannot read ${arg.slice(1)}: ${(err as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MfpError('INVALID_ARGUMENT', `not valid JSON: ${(err as Error).message}`);
  }
}

/** Formats a timestamp as the shell shows it: yyyy/mm/dd hh:mm:ss (local time). */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms === 0) return '-';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '(none)';
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
