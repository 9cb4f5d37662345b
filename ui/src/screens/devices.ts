/**
 * [Device] Confirm Device Information: Device Name, Serial Number and Location of the group's
 * machines with their state; [Filter] narrows by partial match as you type; the details of one;
 * check clients and [Delete] → [Yes] stops their synchronization. The list follows device-state events.
 */
import { op } from '../api.js';
import { act, checked, confirmYes, field, fill, h, input, notice, skew, table, time } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen } from '../screen.js';
import { notServer } from './server.js';

interface DeviceEntry {
  id: string;
  name: string;
  serial: string;
  location: string;
  state: 'server' | 'operating' | 'sleeping' | 'offline';
  session: 'joining' | 'live' | null;
  lastHeartbeat: number | null;
  version: string;
  protocol: number;
  skewMs: number | null;
  cursorLag: number;
  lastChange: number;
  processedChanges: number;
  sent: { deltas: number; items: number } | null;
}

function details(d: DeviceEntry): HTMLElement {
  const rows: [string, string | number][] = [
    ['devices.id', d.id], ['devices.protocol', d.protocol], ['devices.session', d.session ? t(`devices.session.${d.session}`) : '–'],
    ['devices.cursorLag', d.cursorLag], ['devices.lastChange', d.lastChange], ['devices.processed', d.processedChanges],
    ['devices.sent', d.sent ? t('devices.sentValue', d.sent) : '–'],
  ];
  return h('dl', { class: 'details' }, rows.map(([k, v]) => [h('dt', {}, t(k)), h('dd', {}, String(v))]));
}

export const screen: Screen = {
  title: 'devices.title',
  async render(main, ctx) {
    if (!isServer(ctx.status)) return void main.append(notServer());
    const out = h('p', { id: 'message', role: 'status' });
    const filter = input({ id: 'filter', name: 'filter', placeholder: t('devices.filterHint'), autocomplete: 'off' });
    const list = h('div', { id: 'device-list' });
    const open = new Set<string>();
    const draw = async () => {
      const keep = new Set(checked(list, 'device'));
      const { devices } = await op<{ devices: DeviceEntry[] }>('devices.list', { filter: filter.value });
      const rows = devices.map((d) => {
        const toggle = h('button', { type: 'button', class: 'more', 'aria-label': t('devices.details'), 'aria-expanded': String(open.has(d.id)) }, open.has(d.id) ? '▾' : '▸');
        toggle.addEventListener('click', () => {
          if (open.has(d.id)) open.delete(d.id);
          else open.add(d.id);
          void draw();
        });
        return [
          d.state === 'server' || d.id === ctx.status.deviceId ? '' : h('input', { type: 'checkbox', name: 'device', value: d.id, 'aria-label': d.name, checked: keep.has(d.id) }),
          [h('span', { class: 'device-name' }, d.name), open.has(d.id) ? details(d) : null],
          d.serial, d.location,
          h('span', { class: `state ${d.state}` }, t(`state.${d.state}`)),
          time(d.lastHeartbeat), d.version, skew(d.skewMs), toggle,
        ];
      });
      fill(list, devices.length === 0 ? h('p', { class: 'empty' }, t('devices.none')) : table(['', t('device.name'), t('device.serial'), t('device.location'), t('devices.state'),
        t('devices.lastHeartbeat'), t('devices.version'), t('devices.skew'), ''], rows, { class: 'devices' }));
      list.dataset.filter = filter.value;
    };
    let pending: Promise<void> = Promise.resolve();
    const redraw = () => {
      pending = pending.then(draw).catch((err) => act(null, out, () => Promise.reject(err)));
    };
    filter.addEventListener('input', redraw);
    ctx.on(['device-state', 'sync-state', 'join-progress', 'deep-sleep'], redraw);
    const del = h('button', { id: 'delete', type: 'button', class: 'danger' }, t('common.delete'));
    del.addEventListener('click', () => void act(del, out, async () => {
      const ids = checked(list, 'device');
      if (ids.length === 0) return notice(out, 'error', t('devices.selectFirst'));
      if (!(await confirmYes(t('devices.confirm', { n: ids.length })))) return;
      for (const id of ids) await op('devices.remove', { id });
      notice(out, 'ok', t('devices.removed', { n: ids.length }));
      await draw();
    }));
    main.append(h('p', { class: 'note' }, t('devices.note')), field(t('devices.filter'), filter), out, list, h('div', { class: 'buttons' }, del));
    await draw();
  },
};
