/** [User Data] Delete User Data: search, check users and groups, [Delete] → [Yes]. */
import { op } from '../api.js';
import { act, confirmYes, h, notice } from '../dom.js';
import { t } from '../i18n.js';
import type { Screen } from '../screen.js';
import { userPicker } from './user-picker.js';

export const screen: Screen = {
  title: 'users-delete.title',
  async render(main) {
    const out = h('p', { id: 'message', role: 'status' });
    const picker = userPicker(out);
    const del = h('button', { id: 'delete', type: 'button', class: 'danger' }, t('common.delete'));
    del.addEventListener('click', () => void act(del, out, async () => {
      const { users, groups } = picker.selected();
      if (users.length + groups.length === 0) return notice(out, 'error', t('users.selectFirst'));
      if (!(await confirmYes(t('users-delete.confirm', { users: users.length, groups: groups.length })))) return;
      const r = await op<{ deleted: string[] }>('users.delete', { users, groups });
      notice(out, 'ok', t('users-delete.done', { n: r.deleted.length }));
      await picker.search();
    }));
    main.append(h('p', { class: 'note' }, t('users-delete.note')), picker.form, out, picker.list, h('div', { class: 'buttons' }, del));
    await picker.search();
  },
};
