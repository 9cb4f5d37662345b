/**
 * The shape of every catalog item's value, as JSON Schema built with TypeBox: the one place the shapes
 * are written. The agent does not load this module (nor TypeBox: about 13 MB of resident memory on a
 * controller); `npm run gen` compiles these schemas ahead of time, with TypeBox's own compiler, into
 * storage/item-checks.gen.ts, which the catalog uses. test/storage/item-checks.test.ts fails while the
 * generated file is stale, and checks that its functions agree with TypeBox's.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { MAX_NAME_BYTES } from '../protocol/limits.js';

// ---- value schemas ------------------------------------------------------------------------------------
// Bounds are generous for what a panel shows and small against the 256 KiB value bound, so that one
// oversized field is refused by name rather than by the value's total size.

/** A name of a setting's choice (`full-color`, `pdf-ocr`, `drawer-1`), a function or a screen. */
const Choice = Type.String({ minLength: 1, maxLength: 64 });
/** A stable id (a button's, an address entry's, a network place's). */
const Id = Type.String({ minLength: 1, maxLength: MAX_NAME_BYTES });
/** Text a user typed: a label, a name, a note. */
const Label = Type.String({ maxLength: 256 });
/** An address: e-mail, fax number, SMB path, URL. */
const Address = Type.String({ maxLength: 1024 });
const Count = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });
/** An open map: the fields named are typed, any other is kept. */
const Fields = (fields: Parameters<typeof Type.Object>[0]) => Type.Object(fields, { additionalProperties: true });
const Optional = Type.Optional;

/** A send destination inside default or previous settings: an address, or an entry naming one. */
const Destination = Type.Union([Address, Fields({ type: Optional(Choice), address: Optional(Address), name: Optional(Label) })]);
const Destinations = Type.Array(Destination, { maxItems: 512 });
const JobSettings = Fields({
  copy: Optional(Fields({
    colorMode: Optional(Choice), copies: Optional(Count(1, 9999)), paperSource: Optional(Choice), ratio: Optional(Count(1, 1000)),
    duplex: Optional(Choice), density: Optional(Count(-16, 16)), originalType: Optional(Choice), finishing: Optional(Fields({})),
    nUp: Optional(Count(1, 16)), sharpness: Optional(Count(-16, 16)), ecoMode: Optional(Type.Boolean()),
  })),
  fax: Optional(Fields({
    resolution: Optional(Choice), density: Optional(Count(-16, 16)), sendStartSpeed: Optional(Choice), ecm: Optional(Type.Boolean()),
    senderName: Optional(Label), destinations: Optional(Destinations),
  })),
  'scan-and-send': Optional(Fields({
    fileFormat: Optional(Choice), resolution: Optional(Choice), colorMode: Optional(Choice), duplex: Optional(Type.Boolean()),
    subject: Optional(Address), divideIntoPages: Optional(Type.Boolean()), destinations: Optional(Destinations),
  })),
  'scan-and-store': Optional(Fields({ location: Optional(Choice), box: Optional(Choice), fileFormat: Optional(Choice), resolution: Optional(Choice) })),
  'access-stored-files': Optional(Fields({ sortBy: Optional(Choice), view: Optional(Choice), printCopies: Optional(Count(1, 9999)) })),
});
/** A Personal or Shared button: what it starts, with which settings. */
const Button = Fields({ id: Optional(Id), label: Optional(Label), function: Optional(Choice), settings: Optional(Fields({})), position: Optional(Count(0, 9999)) });
const Buttons = Type.Array(Button, { maxItems: 1000 });
/** An address list entry (personal, or a user group's list 01–50). */
const AddressEntry = Fields({
  id: Optional(Id), name: Optional(Label), reading: Optional(Label), type: Optional(Choice), address: Optional(Address),
  email: Optional(Address), fax: Optional(Address), user: Optional(Label), favorite: Optional(Type.Boolean()), note: Optional(Label),
});
const AddressList = Type.Array(AddressEntry, { maxItems: 2000 });
/** A BCP 47 language tag: `ja`, `en-US`, `zh-Hant-TW`. */
const LanguageTag = Type.String({ minLength: 2, maxLength: 35, pattern: '^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$' });

const SCHEMAS = {
  language: Fields({ display: LanguageTag, keyboard: Optional(LanguageTag) }),
  accessibility: Fields({
    invertColors: Optional(Type.Boolean()), largeText: Optional(Type.Boolean()), contrast: Optional(Count(0, 16)),
    keyRepeatMs: Optional(Count(0, 60_000)), buzzer: Optional(Choice),
  }),
  'screen-after-login': Choice,
  home: Fields({ layout: Optional(Choice), wallpaper: Optional(Choice), showTimeline: Optional(Type.Boolean()), pages: Optional(Count(1, 100)), sharedButtonsFirst: Optional(Type.Boolean()) }),
  timeline: Type.Array(Fields({ at: Optional(Count(0, Number.MAX_SAFE_INTEGER)), function: Optional(Choice), summary: Optional(Address) }), { maxItems: 1000 }),
  /** An SSID is at most 32 bytes (IEEE 802.11). */
  network: Fields({ ssid: Optional(Type.String({ maxLength: 32 })), directConnection: Optional(Type.Boolean()) }),
  shortcuts: Type.Array(Fields({ id: Optional(Id), target: Optional(Choice), label: Optional(Label) }), { maxItems: 1000 }),
  'list-order': Fields({ sortBy: Optional(Choice), descending: Optional(Type.Boolean()), favoritesFirst: Optional(Type.Boolean()) }),
  'auto-print': Type.Boolean(),
  /** Network place id → the credentials for it. */
  keychain: Type.Object({}, { additionalProperties: Fields({ user: Optional(Label), domain: Optional(Label), host: Optional(Label) }), maxProperties: 1000 }),
} as const;

/** Each item's schema by capability (`kind:name`, see capabilityOf in the catalog). */
export const ITEM_SCHEMAS: Readonly<Record<string, TSchema>> = {
  'user:language': SCHEMAS.language,
  'user:accessibility': SCHEMAS.accessibility,
  'user:screen-after-login': SCHEMAS['screen-after-login'],
  'user:home': SCHEMAS.home,
  'user:personal-buttons': Buttons,
  'user:timeline': SCHEMAS.timeline,
  'user:network': SCHEMAS.network,
  'user:job-defaults': JobSettings,
  'user:shortcuts': SCHEMAS.shortcuts,
  'user:previous-settings': JobSettings,
  'user:address-list': AddressList,
  'user:list-order': SCHEMAS['list-order'],
  'user:auto-print': SCHEMAS['auto-print'],
  'user:keychain': SCHEMAS.keychain,
  'group:address-list': AddressList,
  'device:shared-buttons': Buttons,
};
