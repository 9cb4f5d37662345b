/** A server's address as an administrator types it. */
import { MfpError } from '../protocol/errors.js';
import { DEFAULT_PORT } from '../protocol/limits.js';
import type { ServerAddress } from './client.js';

/** Parses HOST[:PORT], [IPv6]:PORT or a bare IPv6 address; the port defaults to 8443. */
export function parseAddress(text: string): ServerAddress {
  const bad = () => new MfpError('INVALID_ARGUMENT', `not an address: ${JSON.stringify(text)} (HOST[:PORT], [IPv6]:PORT)`);
  let host: string;
  let port = DEFAULT_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text;
  } else {
    const [h, p] = text.split(':');
    host = h ?? '';
    if (p !== undefined) port = Number(p);
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  return { host, port };
}

/** Whether a listening address is a loopback one: a server bound there cannot be reached from the LAN. */
export function isLoopbackHost(host: string | undefined): boolean {
  return host !== undefined && (host === 'localhost' || host === '::1' || host.startsWith('127.'));
}
