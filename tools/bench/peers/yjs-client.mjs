/**
 * The Yjs peer's clients, loaded by the benchmark's driver (tools/bench/peers.ts) into its own
 * process: y-websocket's WebsocketProvider on a Y.Doc, with the `ws` package as its WebSocket (Node 20
 * has none) and the BroadcastChannel off (`disableBc`), or two providers of one process would talk to
 * each other in memory and never through the server. Waiting is on the document's own events.
 * The data model is in yjs-model.mjs.
 */
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { completeUsers, userMap } from './yjs-model.mjs';

/** The room every client of the group joins. */
export const ROOM = 'mfp-group';

/** A new document, empty or holding what `update` (from `stateOf`) holds, under a client id of its own. */
export function openDoc(update) {
  const doc = new Y.Doc();
  if (update) Y.applyUpdate(doc, update);
  return doc;
}

/** A document's whole state as one update: what a fresh peer receives, and its size on the wire. */
export function stateOf(doc) {
  return Y.encodeStateAsUpdate(doc);
}

/** Writes users into a document, one transaction per user (as an application would, user by user). */
export function fill(doc, users) {
  for (const [user, record] of users) {
    const map = doc.getMap(userMap(user));
    doc.transact(() => {
      for (const [item, value] of Object.entries(record)) map.set(item, value);
    });
  }
}

/** Connects a document to the server on 127.0.0.1:port. */
export function connect(doc, port) {
  return new WebsocketProvider(`ws://127.0.0.1:${port}`, ROOM, doc, { WebSocketPolyfill: WebSocket, disableBc: true });
}

/** Closes a provider and its document. */
export function close(provider, doc) {
  provider.destroy();
  doc.destroy();
}

function guarded(what, timeoutMs, start) {
  return new Promise((resolve, reject) => {
    let stop = () => undefined;
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`yjs: no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    stop = start(() => {
      clearTimeout(timer);
      stop();
      resolve();
    });
  });
}

/** Resolves once the document holds `count` users with `items` items each (now or after an update). */
export function whenUsers(doc, count, items, timeoutMs) {
  if (completeUsers(doc, items) >= count) return Promise.resolve();
  return guarded(`${count} users`, timeoutMs, (done) => {
    const onUpdate = () => {
      if (completeUsers(doc, items) >= count) done();
    };
    doc.on('update', onUpdate);
    return () => doc.off('update', onUpdate);
  });
}

/** Sets one user's item. */
export function setItem(doc, user, item, value) {
  doc.getMap(userMap(user)).set(item, value);
}

/** Resolves at the next change of one user's item that came from elsewhere. Register before causing it. */
export function nextChange(doc, user, item, timeoutMs) {
  const map = doc.getMap(userMap(user));
  return guarded(`change of ${user}/${item}`, timeoutMs, (done) => {
    const onChange = (event) => {
      if (!event.transaction.local && event.keysChanged.has(item)) done();
    };
    map.observe(onChange);
    return () => map.unobserve(onChange);
  });
}
