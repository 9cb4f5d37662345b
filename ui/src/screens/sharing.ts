/**
 * [Device] Data Sharing Details: per configurable item, [Shared across All Devices] or
 * [Device-Specific (Not Shared)]; [OK] → [Yes] applies the changed ones. The agent refuses with
 * CLIENTS_ACTIVE while a client runs: the manual has them stopped first.
 */
import { op } from '../api.js';
import { act, confirmYes, h, notice, table } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen } from '../screen.js';
import { notServer } from './server.js';

type Scope = 'shared' | 'device';
interface Sharing {
  items: { item: string; scope: Scope }[];
  version: number;
}

export const screen: Screen = {
  title: 'sharing.title',
  async render(main, { status }) {
    if (!isServer(status)) return void main.append(notServer());
    const out = h('p', { id: 'message', role: 'status' });
    const body = h('div', { id: 'sharing-list' });
    let current: Sharing = await op<Sharing>('sharing.list');
    const radio = (item: string, scope: Scope, on: boolean) =>
      h('label', { class: 'choice' }, h('input', { type: 'radio', name: `scope-${item}`, value: scope, checked: on, 'data-item': item }), ' ', t(`sharing.${scope}`));
    const draw = () =>
      body.replaceChildren(table([t('sharing.item'), t('sharing.scope')],
        current.items.map(({ item, scope }) => [[t(`item.${item}`, {}, item), ' ', h('span', { class: 'item code' }, item)], [radio(item, 'shared', scope === 'shared'), radio(item, 'device', scope === 'device')]])));
    const ok = h('button', { id: 'ok', type: 'button' }, t('common.ok'));
    ok.addEventListener('click', () => void act(ok, out, async () => {
      const changes = current.items.flatMap(({ item, scope }) => {
        const chosen = body.querySelector<HTMLInputElement>(`input[name="scope-${CSS.escape(item)}"]:checked`)?.value as Scope | undefined;
        return chosen && chosen !== scope ? [{ item, scope: chosen }] : [];
      });
      if (changes.length === 0) return notice(out, 'ok', t('sharing.unchanged'));
      if (!(await confirmYes(t('sharing.confirm', { n: changes.length })))) return;
      let reset = 0;
      try {
        for (const c of changes) reset += (await op<{ reset: number }>('sharing.set', c)).reset;
      } finally {
        current = await op<Sharing>('sharing.list');
        draw();
      }
      notice(out, 'ok', t('sharing.applied', { n: changes.length, reset }));
    }));
    draw();
    main.append(h('p', { class: 'note' }, t('sharing.stopFirst')),
      h('ul', { class: 'notes' }, ['sharing.noteToDevice', 'sharing.noteToShared', 'sharing.noteButtons', 'sharing.noteDefaults'].map((k) => h('li', {}, t(k)))),
      body, out, h('div', { class: 'buttons' }, ok));
  },
};
