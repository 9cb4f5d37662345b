/** Power status: whether deep sleep is blocked and by which clients, and each client's heartbeat. */
import { op } from '../api.js';
import { fill, h, skew, table, time } from '../dom.js';
import { t } from '../i18n.js';
import type { Screen } from '../screen.js';

/** The part of `power.status` the pages read. */
export interface Power {
  role: string;
  asleep: boolean;
  deepSleepBlocked: boolean;
  blockedBy: string[];
  heartbeatSeconds: number;
  clients?: { deviceId: string; name: string; self: boolean; state: string; lastHeartbeat: number | null; expiresAt: number | null; skewMs: number | null }[];
  client?: { state: string; operating: boolean; skewMs: number | null };
}

/** Deep sleep in a sentence: blocked by whom, or free. */
export function deepSleepText(p: Power): string {
  const names = p.blockedBy.map((id) => p.clients?.find((c) => c.deviceId === id)?.name || id);
  if (p.deepSleepBlocked) return t('power.blocked', { names: names.join(', ') });
  return p.asleep ? t('power.asleep') : t('power.free');
}

export const screen: Screen = {
  title: 'power.title',
  async render(main, ctx) {
    const body = h('div', { id: 'power' });
    const draw = async () => {
      const p = await op<Power>('power.status');
      fill(body, h('p', { id: 'deep-sleep', class: p.deepSleepBlocked ? 'blocked' : 'free' }, deepSleepText(p)),
        h('p', {}, t('power.heartbeat', { s: p.heartbeatSeconds })),
        p.client ? h('p', {}, t('power.ownClient', { state: t(`client.state.${p.client.state}`, {}, p.client.state) })) : null,
        p.clients ? table([t('device.name'), t('devices.state'), t('devices.lastHeartbeat'), t('power.expires'), t('devices.skew')],
          p.clients.map((c) => [[c.name, c.self ? ` (${t('power.self')})` : ''], h('span', { class: `state ${c.state}` }, t(`state.${c.state}`)), time(c.lastHeartbeat), time(c.expiresAt), skew(c.skewMs)])) : null);
    };
    ctx.on(['deep-sleep', 'device-state'], () => void draw());
    main.append(body);
    await draw();
  },
};
