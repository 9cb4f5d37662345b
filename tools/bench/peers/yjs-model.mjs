/**
 * How the benchmark's workload maps onto Yjs: one Y.Doc for the whole group (one y-websocket room, so
 * one WebSocket per machine), holding one top-level Y.Map per user, named `user:NAME`, whose keys are
 * the user's items and whose values are the items' values as plain JSON (Yjs `ContentAny`).
 *
 * Why this shape, as a Yjs developer syncing 1,000 users' settings would choose it:
 * - One document, not one per user: y-websocket syncs one document per connection, so a document per
 *   user would be 1,000 sockets and 1,000 sync handshakes per machine.
 * - A top-level map per user, not a nested Y.Map inside a `users` map: top-level types merge by name,
 *   while two machines that create the same user's nested map at the same time keep only one of the
 *   two maps, and the other machine's items vanish.
 * - Plain values, not nested Y types per field: an item is replaced as a whole (like mfpsync's items,
 *   last writer wins per item), and nested types would multiply the structs Yjs keeps.
 */

/** The name of one user's top-level map. */
export const userMap = (user) => `user:${user}`;

/** The number of users whose map holds all `items` items. */
export function completeUsers(doc, items) {
  let n = 0;
  for (const name of [...doc.share.keys()]) {
    // A type an update created before anyone asked for it is a bare AbstractType until `getMap` names it.
    if (name.startsWith('user:') && doc.getMap(name).size >= items) n++;
  }
  return n;
}
