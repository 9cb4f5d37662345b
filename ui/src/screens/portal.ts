/** Portal: the machine's name, role, health and deep-sleep state, and the links to every screen. */
import { op } from '../api.js';
import { h, table } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen } from '../screen.js';
import { deepSleepText, type Power } from './power.js';

export const screen: Screen = {
  title: 'portal.title',
  async render(main, { status }) {
    const power = await op<Power>('power.status');
    const health = h('span', { class: `health ${status.health}`, id: 'health' }, t(`health.${status.health}`));
    main.append(
      table([t('portal.item'), t('portal.value')], [
        [t('device.name'), h('span', { id: 'portal-name' }, status.name)],
        [t('device.serial'), status.serial],
        [t('device.location'), status.location],
        [t('portal.role'), t(`role.${status.role}`)],
        [t('portal.health'), [health, status.healthReasons.length ? h('ul', { class: 'reasons' }, status.healthReasons.map((r) => h('li', {}, r))) : null]],
        [t('portal.deepSleep'), h('span', { id: 'deep-sleep' }, deepSleepText(power))],
        [t('portal.version'), status.software],
      ], { class: 'facts' }),
      h('h2', {}, t('portal.links')),
      h('ul', { class: 'links' },
        isServer(status) ? h('li', {}, h('a', { href: '#/server', id: 'link-server' }, t('server.title'))) : null,
        h('li', {}, h('a', { href: '#/client', id: 'link-client' }, t('client.title'))),
        h('li', {}, h('a', { href: '#/log' }, t('log.title'))),
        h('li', {}, h('a', { href: '#/conflicts' }, t('conflicts.title'))),
        h('li', {}, h('a', { href: '#/power' }, t('power.title')))),
    );
  },
};
