/** Confirm Device Information (SPEC §8): a server's devices, and removing one from the group. */
import { MfpError } from '../../protocol/errors.js';
import type { PowerState } from '../power.js';
import type { Runtime } from './runtime.js';

/** One entry of `devices list`. */
export interface DeviceEntry {
  id: string;
  name: string;
  serial: string;
  location: string;
  /** SPEC §5: `operating` (heard within its timeout), `sleeping` (said so), `offline`; `server`: the server's own row. */
  state: 'server' | PowerState;
  /** The session, if one is open: still joining, or live. */
  session: 'joining' | 'live' | null;
  lastHeartbeat: number | null;
  version: string;
  protocol: number;
  skewMs: number | null;
  cursorLag: number;
  /** The device's highest change counter the server took, and how many of its changes it decided (exactly once: equal). */
  lastChange: number;
  processedChanges: number;
  /** What the server sent it in its current session: change entries (deltas) and snapshot items (join, resync, login fetch); null without one. */
  sent: { deltas: number; items: number } | null;
}

/** The group's devices. */
export class DevicesService {
  readonly #rt: Runtime;

  constructor(rt: Runtime) {
    this.#rt = rt;
  }

  /** Confirm Device Information (SPEC §8), filtered by partial match on id, name, serial or location. */
  list(filter = ''): DeviceEntry[] {
    const group = this.#rt.serving();
    const server = this.#rt.server!;
    const sessions = new Map(server.sessions({ includeSelf: true }).map((s) => [s.deviceId, s]));
    const power = new Map(server.power().clients.map((p) => [p.deviceId, p]));
    const q = filter.toLowerCase();
    return group
      .devices()
      .filter((d) => [d.id, d.name, d.serial, d.location].some((f) => f.toLowerCase().includes(q)))
      .map((d) => {
        const s = sessions.get(d.id);
        const p = power.get(d.id);
        // The server's own row is `server` unless its own client (server-client) was heard.
        const state: DeviceEntry['state'] = d.self && !s && !p ? 'server' : (p?.state ?? 'offline');
        return {
          id: d.id,
          name: d.name,
          serial: d.serial,
          location: d.location,
          state,
          session: s?.state ?? null,
          lastHeartbeat: p?.lastHeartbeat ?? s?.lastHeartbeat ?? (d.self ? null : d.lastSeen),
          version: d.software,
          protocol: d.protocol,
          skewMs: s?.skewMs ?? p?.skewMs ?? null,
          // The server's own row has no cursor unless its own client (server-client) is connected.
          cursorLag: d.self && !s ? 0 : Math.max(0, group.seq - (s?.cursor ?? d.cursor)),
          lastChange: d.lastCounter,
          processedChanges: d.processed ?? 0,
          sent: s?.sent ?? null,
        };
      });
  }

  /** Removes a client from the group: its slot is freed and it is refused until re-admitted. */
  async remove(id: string): Promise<{ removed: string }> {
    const rt = this.#rt;
    const group = rt.serving();
    if (id === rt.identity.deviceId) throw new MfpError('INVALID_ARGUMENT', 'the server cannot remove itself');
    if (!(await group.removeDevice(id))) throw new MfpError('NOT_FOUND', `no device ${JSON.stringify(id)} in this group`, { deviceId: id });
    rt.server?.disconnect(id, 'DEVICE_REMOVED');
    rt.log.info('DEVICE_REMOVED', `device ${id} removed from the group`, { deviceId: id });
    return { removed: id };
  }
}
