/**
 * The search and checkbox list that Delete User Data and Prepare for User Data Export share: a user
 * name or group ID to search for (blank lists all), then one checkbox per user and group.
 */
import { op } from '../api.js';
import { act, checked, field, fill, h, input, table, time } from '../dom.js';
import { t } from '../i18n.js';

/** One entry of `users.list`. */
export interface UserEntry {
  kind: 'user' | 'group';
  id: string;
  lastUsed: number | null;
  items: number;
}

/** The picker's parts: the form, the list, and what is checked. */
export interface Picker {
  form: HTMLFormElement;
  list: HTMLElement;
  search(): Promise<void>;
  selected(): { users: string[]; groups: string[] };
  /** The last search's text (the delete by search of the agent is not used: the boxes say what). */
  lastSearch(): string;
}

/** Builds the picker; `onChange` runs when a box is (un)checked or the list is redrawn. */
export function userPicker(out: Element, onChange: () => void = () => {}): Picker {
  const text = input({ id: 'search', name: 'search', placeholder: t('users.searchHint') });
  const button = h('button', { id: 'search-button', type: 'submit' }, t('common.search'));
  const list = h('div', { id: 'user-list' });
  let last = '';
  const search = async () => {
    last = text.value;
    const { users } = await op<{ users: UserEntry[] }>('users.list', { search: text.value });
    if (users.length === 0) return fill(list, h('p', { class: 'empty' }, t('users.none')));
    const box = (u: UserEntry) => h('input', { type: 'checkbox', name: u.kind, value: u.id, 'aria-label': u.id, onchange: onChange });
    fill(list, table(['', t('users.kind'), t('users.id'), t('users.lastUsed'), t('users.items')],
      users.map((u) => [box(u), t(`users.kind.${u.kind}`), h('span', { class: 'id' }, u.id), time(u.lastUsed), u.items])));
    onChange();
  };
  const form = h('form', { class: 'search' }, field(t('users.search'), text), button);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(button, out, search);
  });
  return { form, list, search, selected: () => ({ users: checked(list, 'user'), groups: checked(list, 'group') }), lastSearch: () => last };
}
