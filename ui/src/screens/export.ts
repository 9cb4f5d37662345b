/**
 * [User Data] Prepare for User Data Export: search, check up to 500 users and 50 groups, [Update and
 * Export] → [Yes]; then the 15-minute window with its remaining time and the export itself.
 */
import { op } from '../api.js';
import { act, confirmYes, field, fill, h, minutesSeconds, notice, time } from '../dom.js';
import { t } from '../i18n.js';
import type { Screen } from '../screen.js';
import { userPicker } from './user-picker.js';

const MAX_USERS = 500;
const MAX_GROUPS = 50;

interface Prepared {
  users: string[];
  groups: string[];
  openedAt: number;
  endsAt: number;
  warning: string;
}

export const screen: Screen = {
  title: 'export.title',
  async render(main, ctx) {
    const out = h('p', { id: 'message', role: 'status' });
    const count = h('p', { id: 'selected', class: 'count' });
    const update = h('button', { id: 'update-export', type: 'button' }, t('export.update'));
    const within = () => {
      const { users, groups } = picker.selected();
      count.textContent = t('export.selected', { users: users.length, maxUsers: MAX_USERS, groups: groups.length, maxGroups: MAX_GROUPS });
      const over = users.length > MAX_USERS || groups.length > MAX_GROUPS;
      count.classList.toggle('over', over);
      update.disabled = over;
    };
    const picker = userPicker(out, within);
    const windowBox = h('section', { id: 'window', class: 'window', hidden: true });
    let endsAt = 0;
    const remaining = h('strong', { id: 'remaining' });
    ctx.every(1000, () => {
      if (endsAt) remaining.textContent = minutesSeconds(endsAt - Date.now());
    });
    const download = h('p', { id: 'download', hidden: true });
    const kind = h('select', { id: 'export-kind' },
      h('option', { value: '' }, t('export.kind.batch')),
      h('option', { value: 'personal' }, t('export.kind.personal')),
      h('option', { value: 'groups' }, t('export.kind.groups')));
    const exportButton = h('button', { id: 'export', type: 'button' }, t('export.export'));
    exportButton.addEventListener('click', () => void act(exportButton, out, async () => {
      // The agent's Remote UI writes the file in its own folder and serves it at /api/download/export.
      const r = await op<{ bytes: number; createdAt: number }>('export', kind.value ? { addressList: kind.value } : {});
      notice(out, 'ok', t('export.written', { bytes: r.bytes, at: time(r.createdAt) }));
      download.hidden = false;
      fill(download, h('a', { id: 'download-export', href: '/api/download/export', download: '' }, t('export.download')));
    }));
    update.addEventListener('click', () => void act(update, out, async () => {
      const { users, groups } = picker.selected();
      if (users.length + groups.length === 0) return notice(out, 'error', t('users.selectFirst'));
      if (!(await confirmYes(t('export.confirm', { users: users.length, groups: groups.length })))) return;
      const r = await op<Prepared>('export.prepare', { users, groups });
      endsAt = Date.now() + (r.endsAt - r.openedAt);
      remaining.textContent = minutesSeconds(endsAt - Date.now());
      windowBox.hidden = false;
      windowBox.replaceChildren(
        h('p', {}, t('export.window', { users: r.users.length, groups: r.groups.length, ends: time(r.endsAt) }), ' ', t('export.remaining'), ' ', remaining),
        h('p', { class: 'warning' }, r.warning),
        h('h2', {}, t('export.exportTitle')), field(t('export.kind'), kind), exportButton, download);
      notice(out, 'ok', t('export.prepared'));
    }));
    main.append(h('p', { class: 'warning' }, t('export.manualWarning')), h('p', { class: 'note' }, t('export.note')),
      picker.form, out, picker.list, count, h('div', { class: 'buttons' }, update), windowBox);
    await picker.search();
  },
};
