/**
 * Building the page: elements are made with `h`, and every piece of data goes in as a text node
 * (`append` of a string), never as markup, so a device or user name like `<img src=x onerror=…>`
 * shows as those characters. There is no innerHTML anywhere in the UI (eslint forbids it).
 */
import { ApiError } from './api.js';
import { t } from './i18n.js';

/** What `h` accepts as a child: nodes, text, or nothing. */
export type Child = Node | string | number | null | undefined | false | readonly Child[];

/** Attributes and listeners of an element: `on…` functions become listeners, the rest attributes. */
export type Props = Record<string, string | number | boolean | EventListener | null | undefined>;

function appendAll(el: Node & ParentNode, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) appendAll(el, c);
    else el.append(typeof c === 'number' ? String(c) : (c as Node | string));
  }
}

/** An element with its attributes and children; strings become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  appendAll(el, children);
  return el;
}

/** Replaces an element's content. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  appendAll(el, children);
}

/** A table with a header row; each row a list of cells. */
export function table(headers: readonly string[], rows: readonly (readonly Child[])[], props: Props = {}): HTMLTableElement {
  return h('table', props, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

/** A labelled form field. */
export function field(label: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

/** The manual's confirmation: a modal dialog with [Yes] and [No]. */
export function confirmYes(question: Child): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (answer: boolean) => () => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const dialog = h('dialog', { class: 'confirm' }, h('p', {}, question), h('div', { class: 'buttons' },
      h('button', { class: 'yes', type: 'button', onclick: done(true) }, t('common.yes')),
      h('button', { class: 'no', type: 'button', onclick: done(false) }, t('common.no'))));
    dialog.addEventListener('cancel', done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A message area: an outcome, or a refusal with its code and the agent's words. */
export function notice(el: Element, what: 'ok' | 'error', ...text: Child[]): void {
  el.className = `notice ${what}`;
  fill(el, ...text);
}

/** Shows an error in a message area: the catalog's sentence for its code, the code, the agent's message. */
export function showError(el: Element, err: unknown): void {
  if (err instanceof ApiError) {
    const known = t(`error.${err.code}`, {}, '');
    notice(el, 'error', h('strong', { class: 'code' }, err.code), ' ', known, known ? ' ' : '', h('span', { class: 'detail' }, err.message));
  } else {
    notice(el, 'error', String((err as Error)?.message ?? err));
  }
}

/** Runs an action from a button, showing its refusal in the message area; the button is disabled meanwhile. */
export async function act(button: HTMLButtonElement | null, out: Element, run: () => Promise<void>): Promise<void> {
  if (button) button.disabled = true;
  try {
    await run();
  } catch (err) {
    showError(out, err);
  } finally {
    if (button) button.disabled = false;
  }
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A time as the manual writes it: yyyy/mm/dd hh:mm:ss (local time); a dash when there is none. */
export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  return `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A remaining duration as m:ss. */
export function minutesSeconds(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${pad(s % 60)}`;
}

/** A clock skew in milliseconds with its sign; a dash when unknown. */
export function skew(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  return t('unit.ms', { n: `${ms > 0 ? '+' : ''}${ms}` });
}

/** Values of the checked boxes under an element. */
export function checked(root: ParentNode, name: string): string[] {
  return [...root.querySelectorAll<HTMLInputElement>(`input[name="${name}"]:checked`)].map((c) => c.value);
}

/** A text input. */
export function input(props: Props = {}): HTMLInputElement {
  return h('input', { type: 'text', ...props });
}
