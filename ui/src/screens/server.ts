/** Synchronize Custom Settings (Server): the menu of [User Data], [Device] and [Server] screens. */
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen } from '../screen.js';

const SECTIONS: [string, string[]][] = [
  ['server.userData', ['users-delete', 'export']],
  ['server.device', ['devices', 'sharing']],
  ['server.server', ['replication', 'backup']],
];

/** The note a server screen shows on a machine that is not a server. */
export function notServer(): HTMLElement {
  return h('p', { class: 'notice error' }, t('server.notServer'));
}

export const screen: Screen = {
  title: 'server.title',
  render(main, { status }) {
    if (!isServer(status)) main.append(notServer());
    for (const [title, links] of SECTIONS) {
      main.append(h('h2', {}, t(title)), h('ul', { class: 'links' }, links.map((l) => h('li', {}, h('a', { href: `#/${l}`, id: `link-${l}` }, t(`${l}.title`)), ' ', h('span', { class: 'hint' }, t(`${l}.hint`))))));
    }
  },
};
