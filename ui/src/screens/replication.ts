/**
 * [Server] Replication: the Destination Device for Replication with its System Manager ID and
 * password, the interval and the threshold, [Start Replication] / [Stop Replication], and the
 * manual's status message.
 */
import { ApiError, op } from '../api.js';
import { act, field, fill, h, input, notice, time } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen } from '../screen.js';
import { notServer } from './server.js';

interface ReplicationStatus {
  state?: 'waiting' | 'running' | 'error';
  message: string;
  to?: string;
  intervalMinutes?: number;
  threshold?: number;
  lastReplication?: number | null;
  runs?: number;
}

export const screen: Screen = {
  title: 'replication.title',
  async render(main, { status }) {
    if (!isServer(status)) return void main.append(notServer());
    const out = h('p', { id: 'message', role: 'status' });
    const state = h('div', { id: 'replication-status', class: 'status' });
    const to = input({ id: 'to', name: 'to', placeholder: t('replication.toHint') });
    const user = input({ id: 'repl-user', name: 'user', autocomplete: 'off' });
    const password = input({ id: 'repl-password', name: 'password', type: 'password', autocomplete: 'new-password' });
    const interval = input({ id: 'interval', name: 'interval', type: 'number', min: 1, placeholder: '60' });
    const threshold = input({ id: 'threshold', name: 'threshold', type: 'number', min: 1, placeholder: '1000' });
    const show = (r: ReplicationStatus) => {
      fill(state, h('p', { id: 'replication-message' }, r.message),
        r.to ? h('p', {}, t('replication.current', { to: r.to, interval: r.intervalMinutes ?? '', threshold: r.threshold ?? '', last: time(r.lastReplication), runs: r.runs ?? 0 })) : null);
      if (r.to && !to.value) to.value = r.to;
    };
    const refresh = async () => {
      try {
        show(await op<ReplicationStatus>('replication.status'));
      } catch (err) {
        // Not configured yet: the form is how it is set up, so the refusal is only a note.
        if (!(err instanceof ApiError)) throw err;
        fill(state, h('p', { id: 'replication-message', class: 'note' }, t('replication.none')));
      }
    };
    const start = h('button', { id: 'start', type: 'button' }, t('replication.start'));
    const stop = h('button', { id: 'stop', type: 'button' }, t('replication.stop'));
    const num = (i: HTMLInputElement) => (i.value === '' ? {} : { [i.name]: Number(i.value) });
    start.addEventListener('click', () => void act(start, out, async () => {
      show(await op<ReplicationStatus>('replication.start', { to: to.value, user: user.value, password: password.value, ...num(interval), ...num(threshold) }));
      notice(out, 'ok', t('replication.started'));
    }));
    stop.addEventListener('click', () => void act(stop, out, async () => {
      await op('replication.stop');
      notice(out, 'ok', t('replication.stopped'));
      await refresh();
    }));
    main.append(h('p', { class: 'note' }, t('replication.note')), state,
      h('form', { class: 'grid', onsubmit: (e: Event) => e.preventDefault() },
        field(t('replication.to'), to), field(t('replication.user'), user), field(t('replication.password'), password),
        field(t('replication.interval'), interval), field(t('replication.threshold'), threshold)),
      h('div', { class: 'buttons' }, start, stop), out);
    await refresh();
  },
};
