/**
 * Finding the server (SPEC §13): a server answers DNS-SD queries for `_mfpsync._tcp.local` over mDNS
 * with its group id, device name, device id and protocol (TXT) and its sync port (SRV); a client whose
 * Destination Server Address is blank asks and collects the answers for a bounded time.
 *
 * The exchange: the browser sends a PTR question for the service type to 224.0.0.251:5353 (and to
 * ff02::fb on each IPv6 interface) from a port of its own, with the hop limit set to the search depth;
 * being a "one-shot" querier (RFC 6762 §5.1, source port not 5353) it is answered by unicast to that
 * port, so it needs no membership nor port 5353 (which a system responder such as avahi may hold).
 * A responder answers a one-shot query by unicast with the question's id and the question itself, and a
 * query from port 5353 by multicast, as RFC 6762 §6.7 says. The address records are read from the
 * interfaces at each answer: a server whose address changes answers with the new one.
 *
 * This module is loaded lazily (only a server that advertises and a client that searches need it), and
 * what it finds is a hint only: the address found goes through the admission proof and the pinned group
 * key like a typed one.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Answer, Packet } from 'dns-packet';
import makeMdns from 'multicast-dns';
import type { SyncLog } from './logger.js';

/** The DNS-SD service type a server advertises. */
export const SERVICE_TYPE = '_mfpsync._tcp.local';

const MDNS_PORT = 5353;
const MDNS_V4 = '224.0.0.251';
const MDNS_V6 = 'ff02::fb';
/** How long a search listens by default (SPEC §13: "a few seconds"). */
export const SEARCH_MS = 3000;

/** What a server says of itself in its advertisement. */
export interface Advertisement {
  groupId: string;
  deviceId: string;
  name: string;
  protocol: number;
  port: number;
  /** The address the server listens on: a wildcard (or none) advertises every interface's address. */
  host?: string;
}

/** A server that answered a search. */
export interface FoundServer {
  /** The DNS-SD instance name. */
  instance: string;
  name: string;
  deviceId: string;
  groupId: string;
  protocol: number;
  port: number;
  /** Its addresses, IPv4 first (link-local IPv6 with the interface it was heard on). */
  addresses: string[];
}

/** A running advertisement; stop() ends it. */
export interface Advertiser {
  stop(): Promise<void>;
}

type Mdns = ReturnType<typeof makeMdns>;

/** This machine's non-internal interfaces that have an address of the family. */
function interfaces(family: 'IPv4' | 'IPv6'): { name: string; address: string }[] {
  const out: { name: string; address: string }[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const a = (addrs ?? []).find((x) => x.family === family && !x.internal);
    if (a) out.push({ name, address: a.address });
  }
  return out;
}

/** The addresses a server listening on `host` is reached at. */
function advertisedAddresses(host: string | undefined): string[] {
  if (host && host !== '::' && host !== '0.0.0.0') return [host];
  const all = Object.values(networkInterfaces()).flatMap((a) => a ?? []).filter((a) => !a.internal);
  return all.filter((a) => !(host === '0.0.0.0' && a.family === 'IPv6')).map((a) => a.address);
}

/** A DNS-SD instance name (at most 63 bytes, no dots): the device name and the start of its id. */
function instanceName(a: Advertisement): string {
  const name = a.name.replace(/[.\s]+/g, '-').slice(0, 40) || 'mfpsync';
  return `${name}-${a.deviceId.slice(0, 12)}`;
}

/** The records that answer a question for the service type. */
function records(a: Advertisement): { answers: Answer[]; additionals: Answer[] } {
  const instance = `${instanceName(a)}.${SERVICE_TYPE}`;
  const target = `${instanceName(a)}.local`;
  const additionals: Answer[] = [
    { name: instance, type: 'SRV', ttl: 120, data: { port: a.port, target } },
    { name: instance, type: 'TXT', ttl: 120, data: [`gid=${a.groupId}`, `name=${a.name}`, `id=${a.deviceId}`, `proto=${a.protocol}`] },
  ];
  for (const address of advertisedAddresses(a.host)) {
    additionals.push(address.includes(':')
      ? { name: target, type: 'AAAA', ttl: 120, data: address.split('%')[0]! }
      : { name: target, type: 'A', ttl: 120, data: address });
  }
  return { answers: [{ name: SERVICE_TYPE, type: 'PTR', ttl: 120, data: instance }], additionals };
}

/**
 * Starts answering searches for this server on every interface (IPv4, and IPv6 where an interface
 * has an address). Socket errors are logged, never thrown: a machine without multicast still serves.
 */
export async function advertise(a: Advertisement, log: SyncLog): Promise<Advertiser> {
  const instances: Mdns[] = [];
  const warn = (err: Error) => log.warning('ADVERTISE_FAILED', `the search answer of this server: ${err.message}`);
  const answer = (m: Mdns) => (query: Packet, rinfo: RemoteInfo) => {
    const asked = (query.questions ?? []).some((q) => q.name.toLowerCase() === SERVICE_TYPE && (q.type === 'PTR' || (q.type as string) === 'ANY'));
    if (!asked) return;
    const { answers, additionals } = records(a);
    // A one-shot querier (not from 5353) is answered by unicast, with its id and question (RFC 6762 §6.7).
    const oneShot = rinfo.port !== MDNS_PORT;
    const packet = oneShot ? { id: query.id, questions: query.questions, answers, additionals } : { answers, additionals };
    m.respond(packet, oneShot ? { port: rinfo.port, address: rinfo.address } : undefined, (err) => err && warn(err));
  };
  const add = (m: Mdns) => {
    m.on('query', answer(m));
    m.on('error', warn);
    m.on('warning', () => undefined);
    instances.push(m);
  };
  add(makeMdns({ type: 'udp4', ttl: 255 }));
  for (const i of interfaces('IPv6')) {
    try {
      add(makeMdns({ type: 'udp6', ip: MDNS_V6, interface: `::%${i.name}`, bind: '::', ttl: 255 }));
    } catch (err) {
      warn(err as Error);
    }
  }
  return {
    stop: () => Promise.all(instances.map((m) => new Promise<void>((r) => m.destroy(() => r())))).then(() => undefined),
  };
}

/** Options of a search. */
export interface SearchOptions {
  /** Routers the question crosses: the multicast hop limit (1: the same router). */
  depth?: number;
  /** How long to listen for answers. */
  timeoutMs?: number;
  /** Only servers of this group (a stranger may claim it too: each answer is still only a hint). */
  groupId?: string;
}

/** Reads the servers a response names. */
function parseResponse(p: Packet, rinfo: RemoteInfo): FoundServer[] {
  const all = [...(p.answers ?? []), ...(p.additionals ?? [])];
  const found: FoundServer[] = [];
  for (const ptr of all) {
    if (ptr.type !== 'PTR' || ptr.name.toLowerCase() !== SERVICE_TYPE) continue;
    const instance = ptr.data;
    const srv = all.find((r) => r.type === 'SRV' && r.name === instance);
    const txt = all.find((r) => r.type === 'TXT' && r.name === instance);
    if (srv?.type !== 'SRV' || txt?.type !== 'TXT') continue;
    const kv = new Map<string, string>();
    for (const entry of [txt.data].flat()) {
      const s = entry.toString();
      const eq = s.indexOf('=');
      if (eq > 0) kv.set(s.slice(0, eq), s.slice(eq + 1));
    }
    const groupId = kv.get('gid');
    const deviceId = kv.get('id');
    if (!groupId || !deviceId) continue;
    const v4: string[] = [];
    const v6: string[] = [];
    // The interface it was heard on scopes a link-local IPv6 address.
    const scope = rinfo.address.includes('%') ? rinfo.address.slice(rinfo.address.indexOf('%')) : '';
    for (const r of all) {
      if (r.name !== srv.data.target) continue;
      if (r.type === 'A') v4.push(r.data);
      if (r.type === 'AAAA') v6.push(r.data.toLowerCase().startsWith('fe80') ? (scope ? `${r.data}${scope}` : '') : r.data);
    }
    const addresses = [...v4, ...v6.filter(Boolean)];
    if (addresses.length === 0) addresses.push(rinfo.address);
    found.push({ instance, name: kv.get('name') ?? '', deviceId, groupId, protocol: Number(kv.get('proto') ?? 0), port: srv.data.port, addresses });
  }
  return found;
}

/**
 * Asks the LAN for servers and collects the answers for `timeoutMs` (asked again once meanwhile, for a
 * lost datagram); one entry per server, its addresses merged across answers.
 */
export function search(o: SearchOptions = {}): Promise<FoundServer[]> {
  const depth = o.depth ?? 1;
  const timeoutMs = o.timeoutMs ?? SEARCH_MS;
  const found = new Map<string, FoundServer>();
  const sockets: Socket[] = [];
  const question = { questions: [{ name: SERVICE_TYPE, type: 'PTR' as const }] };
  return new Promise<FoundServer[]>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(again);
      for (const s of sockets) s.close();
      resolve([...found.values()]);
    };
    const timer = setTimeout(finish, timeoutMs);
    const onResponse = (p: Packet, rinfo: RemoteInfo) => {
      for (const f of parseResponse(p, rinfo)) {
        if (o.groupId !== undefined && f.groupId !== o.groupId) continue;
        const known = found.get(f.deviceId);
        if (known) known.addresses = [...new Set([...known.addresses, ...f.addresses])];
        else found.set(f.deviceId, f);
      }
    };
    const sends: (() => void)[] = [];
    for (const type of ['udp4', 'udp6'] as const) {
      const targets = type === 'udp4' ? [MDNS_V4] : interfaces('IPv6').map((i) => `${MDNS_V6}%${i.name}`);
      if (targets.length === 0) continue;
      const socket = createSocket({ type });
      socket.on('error', () => undefined);
      sockets.push(socket);
      // The library decodes and sends; the socket is ours: bound to a port of its own, no membership.
      const m = makeMdns({ socket, port: MDNS_PORT, ip: targets[0], bind: false, multicast: false });
      m.on('response', onResponse);
      m.on('warning', () => undefined);
      m.on('error', () => undefined);
      socket.bind(0, type === 'udp4' ? '0.0.0.0' : '::', () => {
        if (done) return;
        try {
          socket.setMulticastTTL(depth);
        } catch {
          // A socket that cannot set it sends with the default hop limit (1).
        }
        const send = () => {
          for (const address of targets) m.query(question, { port: MDNS_PORT, address }, () => undefined);
        };
        sends.push(send);
        send();
      });
    }
    const again = setTimeout(() => sends.forEach((s) => s()), Math.min(1000, timeoutMs / 3));
    timer.unref();
    again.unref();
  });
}

/** The first of `addresses` that accepts a TCP connection on `port` within `timeoutMs`, or undefined. */
export async function firstReachable(addresses: readonly string[], port: number, timeoutMs = 1500): Promise<string | undefined> {
  for (const host of addresses) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port, timeout: timeoutMs });
      const end = (v: boolean) => {
        s.destroy();
        resolve(v);
      };
      s.once('connect', () => end(true));
      s.once('timeout', () => end(false));
      s.once('error', () => end(false));
    });
    if (ok) return host;
  }
  return undefined;
}
