/**
 * Synchronize Custom Settings (Client): [Service Start/Stop], [Destination Server Address], [User
 * Account ID for Authentication], [Password], and the state of the link (live, offline with its
 * queued changes, refused with its code). It follows sync-state and changes-acked events.
 */
import { op } from '../api.js';
import { act, field, fill, h, input, notice } from '../dom.js';
import { t } from '../i18n.js';
import { isServer, type Screen, type Status } from '../screen.js';

/** The link's state in the manual's words. */
export function linkText(s: Status): HTMLElement {
  const c = s.client;
  if (!c) return h('span', { id: 'link-state', class: 'state stopped' }, t('client.stopped'));
  const parts: (string | HTMLElement)[] = [t(`client.state.${c.state}`, {}, c.state)];
  if (c.queued > 0 || c.state === 'offline') parts.push(' · ', t('client.queued', { n: c.queued }));
  if (c.error && c.state !== 'live') parts.push(' · ', h('strong', { class: 'code' }, c.error.code), ' ', c.error.message);
  return h('span', { id: 'link-state', class: `state ${c.state}` }, ...parts);
}

export const screen: Screen = {
  title: 'client.title',
  async render(main, ctx) {
    const out = h('p', { id: 'message', role: 'status' });
    const state = h('p', { class: 'status' });
    let status = ctx.status;
    const own = isServer(status);
    const server = input({ id: 'server-address', name: 'server', placeholder: t('client.serverHint') });
    const user = input({ id: 'client-user', name: 'user', autocomplete: 'off' });
    const password = input({ id: 'client-password', name: 'password', type: 'password', autocomplete: 'new-password' });
    // [Allow custom settings to be applied during operation]: on is immediate, off is at the next login.
    const applyDuring = input({ id: 'apply-during', name: 'applyDuring', type: 'checkbox' });
    void op<{ applyDuringLogin: string }>('settings.applyDuringLogin').then((r) => (applyDuring.checked = r.applyDuringLogin === 'immediate'));
    applyDuring.addEventListener('change', () => void act(null, out, async () => {
      const r = await op<{ applyDuringLogin: string }>('settings.applyDuringLogin', { value: applyDuring.checked ? 'immediate' : 'next-login' });
      applyDuring.checked = r.applyDuringLogin === 'immediate';
      notice(out, 'ok', t('client.applyDuringSaved'));
    }));
    const draw = () => {
      fill(state, t('client.link'), ' ', linkText(status));
      if (status.client && !server.value) server.value = status.client.server;
      if (own) server.value = `localhost:${status.port ?? ''}`;
      server.disabled = own;
    };
    const refresh = async () => {
      status = await op<Status>('status');
      draw();
    };
    ctx.on(['sync-state', 'changes-acked', 'join-progress'], () => void refresh());
    const start = h('button', { id: 'service-start', type: 'button' }, t('client.start'));
    const stop = h('button', { id: 'service-stop', type: 'button' }, t('client.stop'));
    start.addEventListener('click', () => void act(start, out, async () => {
      const p: Record<string, unknown> = own ? { role: 'server-client' } : { role: 'client', ...(server.value ? { server: server.value } : {}) };
      if (user.value) Object.assign(p, { user: user.value, password: password.value });
      status = await op<Status>('role.set', p);
      password.value = '';
      draw();
      notice(out, 'ok', t('client.started'));
    }));
    stop.addEventListener('click', () => void act(stop, out, async () => {
      status = await op<Status>('role.set', { role: own ? 'server' : 'standalone' });
      draw();
      notice(out, 'ok', t('client.stoppedDone'));
    }));
    draw();
    main.append(state,
      h('form', { class: 'grid', onsubmit: (e: Event) => e.preventDefault() },
        field(t('client.server'), server), field(t('client.user'), user), field(t('client.password'), password),
        h('label', { class: 'field' }, h('span', {}, t('client.applyDuring')), applyDuring, h('span', { class: 'hint' }, t('client.applyDuringNote')))),
      h('p', { class: 'note' }, own ? t('client.ownNote') : t('client.note')),
      h('div', { class: 'buttons' }, start, stop), out);
  },
};
