/** The sync log with its [Warning] / [Error] filters, and the log as a file to download. */
import { op } from '../api.js';
import { fill, h, table, time } from '../dom.js';
import { t } from '../i18n.js';
import type { Screen } from '../screen.js';

interface Entry {
  at: number;
  level: 'info' | 'warning' | 'error';
  code: string;
  message: string;
  deviceId?: string;
}

const LEVELS = ['info', 'warning', 'error'] as const;

export const screen: Screen = {
  title: 'log.title',
  async render(main, ctx) {
    const list = h('div', { id: 'log-list' });
    let entries: Entry[] = [];
    let level: (typeof LEVELS)[number] = 'info';
    const draw = async () => {
      entries = (await op<{ entries: Entry[] }>('log', { level })).entries;
      fill(list, entries.length === 0 ? h('p', { class: 'empty' }, t('log.none')) : table([t('log.at'), t('log.level'), t('log.code'), t('log.message')],
        [...entries].reverse().map((e) => [time(e.at), h('span', { class: `level ${e.level}` }, t(`log.level.${e.level}`)), e.code, e.message])));
    };
    const choices = h('div', { class: 'choices', role: 'radiogroup' }, LEVELS.map((l) => {
      const r = h('input', { type: 'radio', name: 'level', value: l, checked: l === level });
      r.addEventListener('change', () => {
        level = l;
        void draw();
      });
      return h('label', { class: 'choice' }, r, ' ', t(`log.filter.${l}`));
    }));
    const download = h('button', { id: 'download', type: 'button' }, t('log.download'));
    download.addEventListener('click', () => {
      const text = entries.map((e) => [new Date(e.at).toISOString(), e.level.toUpperCase(), e.code, e.deviceId ?? '', e.message].join('\t')).join('\n') + '\n';
      const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })), download: `mfpsync-${ctx.status.name}-${level}.log` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 0);
    });
    main.append(h('div', { class: 'toolbar' }, choices, download), list);
    await draw();
  },
};
