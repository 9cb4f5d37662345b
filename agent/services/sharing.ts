/** Data Sharing Details (SPEC §4): which scope-configurable items are shared or device-specific. */
import { MfpError } from '../../protocol/errors.js';
import { CATALOG, catalogItem } from '../../storage/catalog.js';
import type { Runtime } from './runtime.js';

/** The scope of each scope-configurable item, and the setting's version. */
export interface SharingState {
  items: { item: string; scope: 'shared' | 'device' }[];
  version: number;
}

/** Data Sharing Details. */
export class SharingService {
  readonly #rt: Runtime;
  readonly #restartOwnClient: () => Promise<void>;

  /** `restartOwnClient`: a server-client's own client goes through a change of scope at once. */
  constructor(rt: Runtime, restartOwnClient: () => Promise<void>) {
    this.#rt = rt;
    this.#restartOwnClient = restartOwnClient;
  }

  /**
   * The scope of each scope-configurable item. On a server, the group's setting; elsewhere, the scopes
   * this machine last applied (all shared before it ever synchronized).
   */
  async list(): Promise<SharingState> {
    const rt = this.#rt;
    const state = rt.group ? await rt.group.sharing() : ((await rt.local.getMeta<{ version: number; device: string[] }>('sharing')) ?? { version: 0, device: [] });
    const items = CATALOG.filter((i) => i.scopeConfigurable).map((i) => ({ item: i.name, scope: state.device.includes(i.name) ? ('device' as const) : ('shared' as const) }));
    return { items, version: state.version };
  }

  /**
   * Sets an item's scope, on a server with no client connected (CLIENTS_ACTIVE otherwise: stop the
   * clients, change, restart them). A server-client's own client goes through the change at once.
   */
  async set(item: string, scope: string): Promise<SharingState & { reset: number }> {
    const rt = this.#rt;
    if (scope !== 'shared' && scope !== 'device') throw new MfpError('INVALID_ARGUMENT', 'the scope is shared or device');
    const cat = catalogItem('user', item);
    if (!cat.scopeConfigurable) {
      const configurable = CATALOG.filter((i) => i.scopeConfigurable).map((i) => i.name).join(', ');
      throw new MfpError('INVALID_ARGUMENT', `${item} is always shared; only ${configurable} can be device-specific`, { item });
    }
    const group = rt.serving();
    rt.refuseActiveClients('stop them, change the scope, then restart them');
    const { reset, ...state } = await group.setSharing(item, scope, `admin:${rt.identity.deviceId}`, ['job-defaults', 'previous-settings']);
    rt.server!.setSharing(state);
    rt.log.info('SHARING_CHANGED', `${item} is now ${scope === 'device' ? 'device-specific' : 'shared'} (${reset} value(s) reset on the server)`);
    if (rt.role === 'server-client') await this.#restartOwnClient();
    return { ...(await this.list()), reset };
  }
}
