/**
 * The string catalogs: every word the pages show comes from i18n/en.json or i18n/pl.json. The language
 * is the one the visitor chose with the switch (kept in localStorage), else the agent's reading of
 * the browser's Accept-Language (/api/session's `lang`), else the browser's own list.
 */
export const LANGS = ['en', 'pl'] as const;
export type Lang = (typeof LANGS)[number];

const KEY = 'mfpsync.lang';
let catalog: Record<string, string> = {};
let current: Lang = 'en';

/** Maps a language tag (pl-PL, en-GB, …) to a catalog, English when there is none. */
export function langOf(tag: string | null | undefined): Lang | undefined {
  const base = (tag ?? '').toLowerCase().split(/[-_;,]/)[0];
  return (LANGS as readonly string[]).includes(base) ? (base as Lang) : undefined;
}

/** The language to show: the switch's choice, the session's, the browser's, English. */
export function pickLang(sessionLang?: string): Lang {
  return langOf(localStorage.getItem(KEY)) ?? langOf(sessionLang) ?? navigator.languages.map(langOf).find((l) => l) ?? 'en';
}

/** Loads a catalog and makes it current. */
export async function loadLang(lang: Lang): Promise<void> {
  const res = await fetch(`i18n/${lang}.json`);
  catalog = (await res.json()) as Record<string, string>;
  current = lang;
  document.documentElement.lang = lang;
}

/** The switch on every page: remembers the choice. */
export function chooseLang(lang: Lang): Promise<void> {
  localStorage.setItem(KEY, lang);
  return loadLang(lang);
}

/** The current language. */
export function lang(): Lang {
  return current;
}

/** A catalog string with {name} placeholders filled; `fallback` (default: the key) when missing. */
export function t(key: string, vars: Record<string, string | number> = {}, fallback?: string): string {
  const s = catalog[key] ?? fallback ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? ''));
}
