/**
 * The Remote UI in a real headless Chromium (Debian's chromium driven by puppeteer-core): one browser
 * and three real agent processes (a server, a client and a replication destination) shared by the
 * file's serial tests, which follow the manual's procedures through the pages and check the agents
 * through the shell. Each screen is saved under test-output/ui/ for a reviewer.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import puppeteer, { type Browser, type BrowserContext, type Page } from 'puppeteer-core';
import { AgentProcess, freePort, joinClient } from '../helpers/agents.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const XSS = '<img src=x onerror=alert(1)>';
const SHOTS = join(process.cwd(), 'test-output/ui');

interface Fleet {
  browser: Browser;
  page: Page;
  server: AgentProcess;
  client: AgentProcess;
  replica: AgentProcess;
  serverUi: string;
  clientUi: string;
  alerts: string[];
  console: string[];
  releases: (() => Promise<void> | void)[];
}

const f = {} as Fleet;

/** An agent with its Remote UI on a free port, killed when the file ends. */
async function agent(dir: string, name: string, uiPort: number): Promise<AgentProcess> {
  return AgentProcess.launch({ defer: (_w, release) => f.releases.push(release) }, { name, dataDir: join(dir, name.replace(/\W/g, '') || 'x'), runArgs: ['--ui-port', String(uiPort)] });
}

test.before(async () => {
  f.releases = [];
  f.alerts = [];
  f.console = [];
  const dir = mkdtempSync(join(tmpdir(), 'mfp-ui-'));
  f.releases.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(SHOTS, { recursive: true });
  const [serverPort, clientPort, replicaPort] = [await freePort(), await freePort(), await freePort()];
  [f.server, f.client, f.replica] = await Promise.all([agent(dir, 'server', serverPort), agent(dir, XSS, clientPort), agent(dir, 'replica', replicaPort)]);
  f.serverUi = `https://127.0.0.1:${serverPort}/`;
  f.clientUi = `https://127.0.0.1:${clientPort}/`;
  const { port } = await f.server.ok<{ port: number }>('role', 'set', 'server');
  await Promise.all([joinClient(f.client, port), f.replica.ok('role', 'set', 'replica')]);
  for (const u of ['alice', 'bob', XSS]) await f.server.ok('user', 'set', u, 'address-list', '[{"name":"x"}]');
  f.browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    acceptInsecureCerts: true,
    defaultViewport: { width: 1024, height: 768 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--lang=en-US'],
  });
  f.releases.push(() => f.browser.close());
  f.page = await f.browser.newPage();
  f.page.setDefaultTimeout(10_000);
  f.page.on('console', (m) => void f.console.push(`${m.type()}: ${m.text()}`));
  f.page.on('pageerror', (e) => void f.console.push(`pageerror: ${(e as Error).message}`));
  f.page.on('dialog', (d) => {
    f.alerts.push(d.message());
    void d.dismiss();
  });
});

test.after.always(async () => {
  for (const release of f.releases.reverse()) await release();
});

/** Opens a screen and waits until its first data is drawn. */
async function open(page: Page, base: string, screen: string): Promise<void> {
  await page.goto(`${base}#/${screen}`);
  try {
    await page.waitForSelector(`main[data-ready="${screen}"]`);
  } catch (err) {
    throw new Error(`${screen} not drawn at ${page.url()}; the page shows: ${await page.$eval('body', (b) => b.textContent)}; console: ${f.console.join(' | ')}`, { cause: err });
  }
}

/** Saves the page as test-output/ui/NAME.png. */
function shot(page: Page, name: string): Promise<unknown> {
  return page.screenshot({ path: join(SHOTS, `${name}.png`) as `${string}.png` });
}

const text = (page: Page, selector: string) => page.$eval(selector, (e) => e.textContent ?? '');

/** Logs in on the Login screen and waits for the Portal. */
async function logIn(page: Page, base: string, password = 'secret-pw'): Promise<void> {
  await page.goto(base);
  await page.waitForSelector('#password');
  await page.type('#password', password);
  await page.click('#login');
}

/** Answers [Yes] in the confirmation dialog. */
async function yes(page: Page): Promise<void> {
  await page.waitForSelector('dialog.confirm[open] button.yes');
  await page.click('dialog.confirm button.yes');
}

/** Waits for the screen's message area to say something of this kind (matching `re`), and returns it. */
async function message(page: Page, kind: 'ok' | 'error', re = /./): Promise<string> {
  try {
    await page.waitForFunction((k, source) => {
      const m = document.querySelector('#message');
      return m?.classList.contains(k) && new RegExp(source).test(m.textContent ?? '');
    }, {}, kind, re.source);
  } catch (err) {
    throw new Error(`no ${kind} message; the page shows: ${await page.$eval('main', (b) => b.textContent)}`, { cause: err });
  }
  return text(page, '#message');
}

test.serial('Login: a wrong password is refused, the right one opens the Portal', async (t) => {
  const { page } = f;
  await logIn(page, f.serverUi, 'wrong-pw');
  t.regex(await message(page, 'error'), /[A-Z_]{4,}/);
  await shot(page, 'login');
  await page.$eval('#password', (e) => ((e as HTMLInputElement).value = ''));
  await page.type('#password', 'secret-pw');
  await page.click('#login');
  await page.waitForSelector('main[data-ready="portal"]');
  t.is(await text(page, '#portal-name'), 'server');
  t.regex(await text(page, '#deep-sleep'), /blocked by: .*<img src=x onerror=alert\(1\)>/);
  await shot(page, 'portal');
});

test.serial('Confirm Device Information: the list, its filter as you type, the XSS name as text', async (t) => {
  const { page } = f;
  await open(page, f.serverUi, 'devices');
  const names = () => page.$$eval('#device-list .device-name', (els) => els.map((e) => e.textContent));
  t.deepEqual((await names()).sort(), [XSS, 'server'].sort());
  t.is(await page.$('#device-list img'), null, 'the name is text, not an element');
  await page.type('#filter', 'onerr');
  await page.waitForSelector('#device-list[data-filter="onerr"]');
  t.deepEqual(await names(), [XSS]);
  await page.type('#filter', 'zz');
  await page.waitForSelector('#device-list[data-filter="onerrzz"] .empty');
  await page.$eval('#filter', (e) => ((e as HTMLInputElement).value = ''));
  await page.type('#filter', 'SN-');
  await page.waitForSelector('#device-list[data-filter="SN-"] .device-name');
  // The list is redrawn by live events: click inside the page, where no redraw can come between.
  await page.$eval('#device-list button.more', (b) => (b as HTMLButtonElement).click());
  await page.waitForSelector('#device-list dl.details');
  await shot(page, 'confirm-device-information');
  t.deepEqual(f.alerts, []);
});

test.serial('Delete User Data: search, check, Delete → Yes; the XSS user name as text', async (t) => {
  const { page } = f;
  await open(page, f.serverUi, 'users-delete');
  const ids = () => page.$$eval('#user-list .id', (els) => els.map((e) => e.textContent));
  t.true((await ids()).includes(XSS), 'blank search lists all');
  t.is(await page.$('#user-list img'), null);
  await page.type('#search', 'ali');
  await page.click('#search-button');
  await page.waitForFunction(() => document.querySelectorAll('#user-list .id').length === 1);
  t.deepEqual(await ids(), ['alice']);
  await page.click('#user-list input[value="alice"]');
  await shot(page, 'delete-user-data');
  await page.click('#delete');
  await yes(page);
  t.regex(await message(page, 'ok'), /1/);
  const { users } = await f.server.ok<{ users: { id: string }[] }>('users', 'list');
  t.deepEqual(users.map((u) => u.id).sort(), [XSS, 'bob'].sort());
  t.deepEqual(f.alerts, []);
});

test.serial('Prepare for User Data Export: select, Update and Export → Yes, the window and its remaining time', async (t) => {
  const { page } = f;
  // The manual: on a server machine with the client function, whose destination is localhost:8443.
  await f.server.ok('role', 'set', 'server-client');
  t.teardown(() => f.server.ok('role', 'set', 'server'));
  await open(page, f.serverUi, 'export');
  await page.click('#user-list input[value="bob"]');
  t.regex(await text(page, '#selected'), /1\/500.*0\/50/);
  await page.click('#update-export');
  await yes(page);
  await message(page, 'ok', /15/);
  await page.waitForSelector('#window:not([hidden]) #remaining');
  t.regex(await text(page, '#remaining'), /^1[45]:\d\d$/);
  await page.click('#export');
  await message(page, 'ok', /bytes/);
  const download = await page.$eval('#download-export', (a) => fetch((a as HTMLAnchorElement).href).then(async (r) => ({ status: r.status, bytes: (await r.arrayBuffer()).byteLength })));
  t.is(download.status, 200);
  t.true(download.bytes > 0);
  await shot(page, 'prepare-for-user-data-export');
});

test.serial('Data Sharing Details: refused with CLIENTS_ACTIVE while a client runs', async (t) => {
  const { page } = f;
  await open(page, f.serverUi, 'sharing');
  await page.click('#sharing-list input[value="device"]:not(:checked)');
  await page.click('#ok');
  await yes(page);
  t.regex(await message(page, 'error', /CLIENTS_ACTIVE/), /connected/);
  await shot(page, 'data-sharing-details-refused');
});

test.serial('Synchronize Custom Settings (Client) on the client: the link is live', async (t) => {
  // A context of its own: cookies are per host, not per port, so the client's session would replace the server's.
  const context = await f.browser.createBrowserContext();
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  await logIn(page, f.clientUi);
  await page.waitForSelector('main[data-ready="portal"]');
  t.is(await page.$('#portal-name img'), null);
  t.is(await text(page, '#portal-name'), XSS);
  await open(page, f.clientUi, 'client');
  await page.waitForFunction(() => document.querySelector('#link-state')?.classList.contains('live'));
  // [Allow custom settings to be applied during operation]: on (immediate) by default; unticked, the
  // agent applies a logged-in user's changed language at the next login, and keeps it so.
  await page.waitForFunction(() => (document.querySelector('#apply-during') as HTMLInputElement | null)?.checked === true);
  await page.click('#apply-during');
  await message(page, 'ok');
  t.deepEqual(await f.client.ok('settings', 'apply-during-login'), { applyDuringLogin: 'next-login' });
  await page.$eval('#message', (m) => m.replaceChildren());
  await page.$eval('#message', (m) => (m.className = ''));
  await page.click('#apply-during');
  await message(page, 'ok');
  t.deepEqual(await f.client.ok('settings', 'apply-during-login'), { applyDuringLogin: 'immediate' });
  await shot(page, 'client-settings');
});

test.serial('Confirm Device Information: select the client, Delete → Yes stops it; the list updates live', async (t) => {
  const { page } = f;
  const { deviceId } = await f.client.ok<{ deviceId: string }>('status');
  await open(page, f.serverUi, 'devices');
  await page.$eval(`#device-list input[value="${deviceId}"]`, (b) => (b as HTMLInputElement).click());
  await page.click('#delete');
  await yes(page);
  t.regex(await message(page, 'ok'), /1/);
  await page.waitForFunction(() => document.querySelectorAll('#device-list .device-name').length === 1);
  const { devices } = await f.server.ok<{ devices: { name: string }[] }>('devices', 'list');
  t.deepEqual(devices.map((d) => d.name), ['server']);
});

test.serial('Data Sharing Details: applied once no client runs', async (t) => {
  const { page } = f;
  await open(page, f.serverUi, 'sharing');
  const item = await page.$eval('#sharing-list input[value="device"]:not(:checked)', (e) => (e as HTMLInputElement).dataset.item!);
  await page.click(`#sharing-list input[value="device"][data-item="${item}"]`);
  await page.click('#ok');
  await yes(page);
  t.regex(await message(page, 'ok'), /1/);
  const { items } = await f.server.ok<{ items: { item: string; scope: string }[] }>('sharing', 'list');
  t.is(items.find((i) => i.item === item)?.scope, 'device');
  await shot(page, 'data-sharing-details');
});

test.serial('Back Up to the device, and the execution log', async (t) => {
  const { page } = f;
  await open(page, f.serverUi, 'backup');
  await page.click('#backup');
  await message(page, 'ok', /bytes/);
  await page.waitForSelector('#execution-log tbody tr');
  t.regex(await text(page, '#execution-log tbody tr'), /Back Up.*OK/);
  await shot(page, 'back-up-restore');
});

test.serial('Replication: Start, then the manual status message', async (t) => {
  const { page } = f;
  const { port } = await f.replica.ok<{ port: number }>('status');
  await open(page, f.serverUi, 'replication');
  await page.type('#to', `127.0.0.1:${port}`);
  await page.type('#repl-user', 'admin');
  await page.type('#repl-password', 'secret-pw');
  await page.click('#start');
  t.truthy(await message(page, 'ok'));
  await page.waitForFunction(() => /Waiting for replication/.test(document.querySelector('#replication-message')?.textContent ?? ''));
  await shot(page, 'replication');
});

test.serial('the other screens, and the language switch to Polish on every page', async (t) => {
  const { page } = f;
  for (const screen of ['server', 'log', 'conflicts', 'power']) {
    await open(page, f.serverUi, screen);
    await shot(page, screen);
  }
  await page.select('#lang', 'pl');
  await page.waitForFunction(() => document.documentElement.lang === 'pl' && document.querySelector('main')?.dataset.ready === 'power');
  t.is(await text(page, 'main h1'), 'Stan zasilania');
  await open(page, f.serverUi, 'devices');
  t.is(await text(page, 'main h1'), 'Potwierdź informacje o urządzeniu');
  await shot(page, 'pl-confirm-device-information');
  await page.select('#lang', 'en');
  await page.waitForFunction(() => document.documentElement.lang === 'en');
});

test.serial("a Polish browser (Accept-Language) gets Polish pages after login", async (t) => {
  let context: BrowserContext | undefined;
  try {
    context = await f.browser.createBrowserContext();
    const page = await context.newPage();
    await page.setExtraHTTPHeaders({ 'accept-language': 'pl-PL,pl;q=0.9' });
    await logIn(page, f.serverUi);
    await page.waitForSelector('main[data-ready="portal"]');
    t.is(await text(page, '#logout'), 'Wyloguj');
  } finally {
    await context?.close();
  }
});
