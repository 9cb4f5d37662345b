/**
 * The Yjs peer's server, as a child process of `npm run bench -- --peers`: @y/websocket-server's
 * `setupWSConnection` on a `ws` server, with y-leveldb persistence in `--dir`, the way the
 * y-websocket server runs with YPERSISTENCE set. The persistence is the one @y/websocket-server builds
 * for YPERSISTENCE, line for line, with one addition: once an update is stored, the number of complete
 * users the persisted document holds is reported on stdout when it has changed, so that the benchmark
 * can tell when an upload is on disk. y-leveldb writes without fsync (LevelDB's default).
 *
 *   node yjs-server.mjs --dir DIR [--port 0] [--items 14]
 *
 * stdout, one JSON line each: {"event":"ready","port":N} once listening; {"event":"loaded","ms":T} once a
 * document is read from LevelDB (at its first connection); {"event":"persisted","users":N}.
 * SIGTERM/SIGINT: closes the sockets and the database, then exits.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import * as Y from 'yjs';
import { LeveldbPersistence } from 'y-leveldb';
import { setPersistence, setupWSConnection } from '@y/websocket-server/utils';
import { completeUsers } from './yjs-model.mjs';

const { values } = parseArgs({ options: { dir: { type: 'string' }, port: { type: 'string', default: '0' }, items: { type: 'string', default: '14' } } });
if (!values.dir) throw new TypeError('--dir is required');
const items = Number(values.items);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const ldb = new LeveldbPersistence(values.dir);
let reported = -1;
/**
 * Reports the persisted document's complete users when their number changed. Every top-level type is
 * a user's map: once all are complete, an update that adds none (a live change) is not counted again.
 */
const persisted = (doc) => {
  if (reported === doc.share.size) return;
  const users = completeUsers(doc, items);
  if (users !== reported) say({ event: 'persisted', users });
  reported = users;
};
setPersistence({
  provider: ldb,
  bindState: async (docName, ydoc) => {
    const t0 = performance.now();
    const persistedYdoc = await ldb.getYDoc(docName);
    const newUpdates = Y.encodeStateAsUpdate(ydoc);
    ldb.storeUpdate(docName, newUpdates);
    Y.applyUpdate(ydoc, Y.encodeStateAsUpdate(persistedYdoc));
    say({ event: 'loaded', ms: performance.now() - t0 });
    ydoc.on('update', (update) => {
      void ldb.storeUpdate(docName, update).then(() => persisted(ydoc));
    });
  },
  writeState: async () => {},
});

const wss = new WebSocketServer({ noServer: true });
wss.on('connection', setupWSConnection);
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('okay');
});
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(Number(values.port), '127.0.0.1', () => say({ event: 'ready', port: server.address().port }));

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  server.close();
  void ldb.destroy().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
