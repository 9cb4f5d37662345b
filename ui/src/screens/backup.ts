/**
 * [Server] Back Up ([Device] or [Network]), Restore, Recovery Using Replicated Data (the replica's
 * time shown to confirm with [Yes]) and the execution log of all three.
 */
import { op } from '../api.js';
import { act, confirmYes, field, fill, h, input, notice, table, time } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen } from '../screen.js';
import { notServer } from './server.js';

interface Run {
  at: number;
  op: 'backup' | 'restore' | 'recover';
  place: string;
  result: string;
  message: string;
}

/** [Device] or [Network] with the network folder's address and the share's account. */
function place(prefix: string) {
  const radio = (v: string, on: boolean) => h('label', { class: 'choice' }, h('input', { type: 'radio', name: `${prefix}-place`, value: v, checked: on }), ' ', t(`backup.${v}`));
  const url = input({ id: `${prefix}-url`, placeholder: 'smb://host/share/folder' });
  const user = input({ id: `${prefix}-user`, autocomplete: 'off' });
  const password = input({ id: `${prefix}-password`, type: 'password', autocomplete: 'new-password' });
  const el = h('div', { class: 'place' }, h('div', { class: 'choices' }, radio('device', true), radio('network', false)),
    h('div', { class: 'grid' }, field(t('backup.url'), url), field(t('backup.shareUser'), user), field(t('backup.sharePassword'), password)));
  const network = () => el.querySelector<HTMLInputElement>(`input[name="${prefix}-place"]:checked`)?.value === 'network';
  return { el, network, url, user, password };
}

export const screen: Screen = {
  title: 'backup.title',
  async render(main, { status }) {
    if (!isServer(status)) return void main.append(notServer());
    const out = h('p', { id: 'message', role: 'status' });
    const log = h('div', { id: 'execution-log' });
    const refresh = async () => {
      const { runs } = await op<{ runs: Run[] }>('backup.log');
      fill(log, runs.length === 0 ? h('p', { class: 'empty' }, t('backup.noRuns')) : table([t('backup.at'), t('backup.op'), t('backup.place'), t('backup.result'), t('backup.message')],
        [...runs].reverse().map((r) => [time(r.at), t(`backup.op.${r.op}`), r.place, h('span', { class: r.result === 'ok' ? 'ok' : 'error' }, r.result === 'ok' ? t('backup.ok') : r.result), r.message])));
    };
    const done = async (text: string) => {
      notice(out, 'ok', text);
      await refresh();
    };
    const fail = async (run: () => Promise<void>) => {
      try {
        await run();
      } finally {
        await refresh();
      }
    };

    const b = place('backup');
    const backup = h('button', { id: 'backup', type: 'button' }, t('backup.run'));
    backup.addEventListener('click', () => void act(backup, out, () => fail(async () => {
      const r = await op<{ destination: string; bytes: number }>('backup', b.network() ? { to: b.url.value, user: b.user.value, password: b.password.value } : { to: 'device' });
      await done(t('backup.done', { to: r.destination, bytes: r.bytes }));
    })));

    const rs = place('restore');
    const restore = h('button', { id: 'restore', type: 'button' }, t('restore.run'));
    restore.addEventListener('click', () => void act(restore, out, () => fail(async () => {
      if (!(await confirmYes(t('restore.confirm')))) return;
      const r = await op<{ source: string; createdAt: number }>('restore', rs.network() ? { from: rs.url.value, shareUser: rs.user.value, sharePassword: rs.password.value } : { from: 'device' });
      await done(t('restore.done', { from: r.source, at: time(r.createdAt) }));
    })));

    const from = input({ id: 'recover-from', placeholder: t('replication.toHint') });
    const ruser = input({ id: 'recover-user', autocomplete: 'off' });
    const rpassword = input({ id: 'recover-password', type: 'password', autocomplete: 'new-password' });
    const recover = h('button', { id: 'recover', type: 'button' }, t('recover.run'));
    recover.addEventListener('click', () => void act(recover, out, () => fail(async () => {
      const params = { from: from.value, user: ruser.value, password: rpassword.value };
      const look = await op<{ replica: { at: number; seq: number } }>('recover', { ...params, confirm: false });
      if (!(await confirmYes(t('recover.confirm', { at: time(look.replica.at), seq: look.replica.seq })))) return;
      const r = await op<{ replica: { at: number } }>('recover', { ...params, confirm: true });
      await done(t('recover.done', { at: time(r.replica.at) }));
    })));

    main.append(out,
      h('section', { id: 'section-backup' }, h('h2', {}, t('backup.section')), h('p', { class: 'note' }, t('backup.note')), b.el, h('div', { class: 'buttons' }, backup)),
      h('section', { id: 'section-restore' }, h('h2', {}, t('restore.section')), h('p', { class: 'note' }, t('restore.note')), rs.el, h('div', { class: 'buttons' }, restore)),
      h('section', { id: 'section-recover' }, h('h2', {}, t('recover.section')), h('p', { class: 'note' }, t('recover.note')),
        h('div', { class: 'grid' }, field(t('recover.from'), from), field(t('replication.user'), ruser), field(t('replication.password'), rpassword)), h('div', { class: 'buttons' }, recover)),
      h('section', {}, h('h2', {}, t('backup.log')), log));
    await refresh();
  },
};
