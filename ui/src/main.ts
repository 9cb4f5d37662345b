/**
 * The Remote UI's entry: finds the session (or shows Login), draws the bar with the language switch,
 * and routes `#/name` to a screen module loaded on demand. Live events come from GET /api/events.
 */
import { ApiError, follow, login, logout, op, session, whenUnauthorized, type AgentEvent } from './api.js';
import { act, field, fill, h, input, showError } from './dom.js';
import { chooseLang, lang, LANGS, loadLang, pickLang, t, type Lang } from './i18n.js';
import type { Screen, ScreenContext, Status } from './screen.js';

const SCREENS: Record<string, () => Promise<{ screen: Screen }>> = {
  portal: () => import('./screens/portal.js'),
  server: () => import('./screens/server.js'),
  'users-delete': () => import('./screens/users-delete.js'),
  export: () => import('./screens/export.js'),
  devices: () => import('./screens/devices.js'),
  sharing: () => import('./screens/sharing.js'),
  replication: () => import('./screens/replication.js'),
  backup: () => import('./screens/backup.js'),
  client: () => import('./screens/client.js'),
  log: () => import('./screens/log.js'),
  conflicts: () => import('./screens/conflicts.js'),
  power: () => import('./screens/power.js'),
};

const NAV = ['portal', 'server', 'client', 'log', 'conflicts', 'power'];

const bar = document.getElementById('bar')!;
const main = document.getElementById('main')!;
let user: string | undefined;
let stopEvents: (() => void) | undefined;
let leave: (() => void)[] = [];
const listeners = new Set<(e: AgentEvent) => void>();

function route(): string {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0];
  return Object.hasOwn(SCREENS, name) ? name : 'portal';
}

function langSwitch(): HTMLElement {
  const select = h('select', { id: 'lang', 'aria-label': t('bar.language') }, LANGS.map((l) => h('option', { value: l, selected: l === lang() }, t(`lang.${l}`))));
  select.addEventListener('change', () => void chooseLang(select.value as Lang).then(show));
  return select;
}

function drawBar(status?: Status): void {
  const here = route();
  fill(bar,
    h('span', { class: 'brand' }, t('app.title')),
    status ? h('span', { class: 'machine' }, h('span', { id: 'machine-name' }, status.name), ' · ', t(`role.${status.role}`)) : null,
    user ? h('nav', {}, NAV.map((n) => h('a', { href: `#/${n}`, class: n === here ? 'here' : null }, t(`nav.${n}`)))) : null,
    h('span', { class: 'end' }, langSwitch(), user ? h('button', { id: 'logout', type: 'button', onclick: () => void logout().finally(() => ((user = undefined), show())) }, t('bar.logout')) : null));
}

function drawLogin(): void {
  stopEvents?.();
  stopEvents = undefined;
  drawBar();
  document.title = t('login.title');
  const name = input({ id: 'user', name: 'user', autocomplete: 'username', value: 'admin' });
  const password = input({ id: 'password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const out = h('p', { id: 'message', role: 'status' });
  const button = h('button', { id: 'login', type: 'submit' }, t('login.submit'));
  const form = h('form', { class: 'login' }, h('h1', {}, t('login.title')), h('p', {}, t('login.intro')),
    field(t('login.user'), name), field(t('login.password'), password), button, out);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(button, out, async () => {
      await login(name.value, password.value);
      // The session says which language the browser asked for (Accept-Language); a switch choice wins.
      const s = await session();
      user = s.user;
      await loadLang(pickLang(s.lang));
      await show();
    });
  });
  fill(main, form);
  password.focus();
}

/** Draws the current route's screen (or Login without a session). */
async function show(): Promise<void> {
  for (const f of leave) f();
  leave = [];
  listeners.clear();
  delete main.dataset.ready;
  if (!user) return drawLogin();
  let status: Status;
  try {
    status = await op<Status>('status');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    throw err;
  }
  stopEvents ??= follow((e) => {
    for (const f of listeners) f(e);
  });
  drawBar(status);
  const name = route();
  const { screen } = await SCREENS[name]();
  if (name !== route()) return; // the visitor moved on while it loaded
  const ctx: ScreenContext = {
    status,
    on(events, f) {
      listeners.add((e) => {
        if (events.includes(e.event)) f(e);
      });
    },
    every(ms, f) {
      const id = setInterval(f, ms);
      leave.push(() => clearInterval(id));
    },
  };
  document.title = `${t(screen.title)} · ${status.name}`;
  main.replaceChildren(h('h1', {}, t(screen.title)));
  main.dataset.screen = name;
  delete main.dataset.ready;
  try {
    await screen.render(main, ctx);
  } catch (err) {
    const out = h('p', { id: 'message', role: 'status' });
    main.append(out);
    showError(out, err);
  }
  main.dataset.ready = name; // for the browser tests: the screen's first data is drawn
}

whenUnauthorized(() => {
  user = undefined;
  void show();
});
window.addEventListener('hashchange', () => void show());

async function boot(): Promise<void> {
  let s: Awaited<ReturnType<typeof session>> | undefined;
  try {
    s = await session();
    user = s.user;
  } catch {
    user = undefined;
  }
  await loadLang(pickLang(s?.lang));
  await show();
}

void boot();
