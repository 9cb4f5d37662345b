/** Conflicts: the changes that lost (an offline edit, a join, a resync, a refusal), newest first. */
import { op } from '../api.js';
import { h, table, time } from '../dom.js';
import { t } from '../i18n.js';
import type { Screen } from '../screen.js';

interface Conflict {
  at: number;
  deviceId: string;
  entity: string;
  item: string;
  value: unknown;
  base: number;
  serverVersion: number;
  reason: string;
  code?: string;
  log: 'local' | 'group';
}

export const screen: Screen = {
  title: 'conflicts.title',
  async render(main) {
    const { conflicts } = await op<{ conflicts: Conflict[] }>('conflicts.list');
    main.append(h('p', { class: 'note' }, t('conflicts.note')), conflicts.length === 0 ? h('p', { class: 'empty' }, t('conflicts.none')) :
      table([t('log.at'), t('conflicts.entity'), t('conflicts.item'), t('conflicts.value'), t('conflicts.reason'), t('conflicts.device'), t('conflicts.versions')],
        [...conflicts].reverse().map((c) => [time(c.at), c.entity, c.item, h('code', {}, JSON.stringify(c.value) ?? ''),
          [t(`conflicts.reason.${c.reason}`, {}, c.reason), c.code ? ` (${c.code})` : ''], c.deviceId, `${c.base} → ${c.serverVersion}`]), { id: 'conflict-list' }));
  },
};
