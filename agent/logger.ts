/**
 * Logging. Operational lines go to pino (JSON on stderr); events an administrator must see — joins,
 * refusals, conflicts, errors — also go to the sync log in the store, with the Warning/Error levels of
 * SPEC §8, where `mfpsync log` reads them.
 */
import { pino, destination, type Logger } from 'pino';
import type { LogLevel, Store } from '../storage/store.js';
import type { Clock } from './clock.js';

export type { Logger };

/** Creates the process logger. `MFPSYNC_LOG_LEVEL` overrides the level (default info). */
export function createLogger(options: { level?: string; destination?: number } = {}): Logger {
  return pino(
    { level: options.level ?? process.env.MFPSYNC_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    destination({ dest: options.destination ?? 2, sync: true }),
  );
}

/** Writes administrator-facing events to the store's sync log and to the process logger. */
export class SyncLog {
  readonly #logger: Logger;
  readonly #clock: Clock;
  #store: Store | undefined;

  constructor(logger: Logger, clock: Clock) {
    this.#logger = logger;
    this.#clock = clock;
  }

  /** Where entries are kept (the local store). */
  attach(store: Store): void {
    this.#store = store;
  }

  info(code: string, message: string, fields: { deviceId?: string } = {}): void {
    this.#write('info', code, message, fields);
  }

  warning(code: string, message: string, fields: { deviceId?: string } = {}): void {
    this.#write('warning', code, message, fields);
  }

  error(code: string, message: string, fields: { deviceId?: string } = {}): void {
    this.#write('error', code, message, fields);
  }

  #write(level: LogLevel, code: string, message: string, fields: { deviceId?: string }): void {
    const line = { code, ...fields };
    if (level === 'error') this.#logger.error(line, message);
    else if (level === 'warning') this.#logger.warn(line, message);
    else this.#logger.info(line, message);
    this.#store?.appendLog({ at: this.#clock.now(), level, code, message, ...fields }).catch((err: unknown) => {
      this.#logger.error({ err }, 'sync log write failed');
    });
  }
}
