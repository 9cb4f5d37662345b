/**
 * A stranger on the LAN, as a process of its own (run inside a network namespace): it advertises
 * `_mfpsync._tcp` with a group id that is not its own and serves an impostor that claims that group but
 * signs with another key (test/helpers/impostor.ts). Prints `{"event":"ready","port"}`, then
 * `{"event":"hello","deviceId"}` for each hello that reaches it, as JSON lines; SIGTERM stops it.
 *
 *   node stranger.js GROUP_ID NAME PORT
 */
import { advertise } from '../../agent/discovery.js';
import type { SyncLog } from '../../agent/logger.js';
import { PROTOCOL_VERSION } from '../../protocol/limits.js';
import { Impostor } from './impostor.js';

const [groupId, name, port] = process.argv.slice(2);
if (!groupId || !name || !port) throw new TypeError('usage: stranger.js GROUP_ID NAME PORT');
const print = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e) + '\n');
const impostor = await Impostor.start({ host: '::', port: Number(port), groupId, onHello: (h) => print({ event: 'hello', deviceId: h.deviceId }) });
const quiet = () => undefined;
const log = { info: quiet, warning: quiet, error: quiet } as unknown as SyncLog;
const advertiser = await advertise({ groupId, deviceId: 'stranger0000000', name, protocol: PROTOCOL_VERSION, port: impostor.port }, log);
print({ event: 'ready', port: impostor.port });
process.once('SIGTERM', () => void Promise.all([advertiser.stop(), impostor.close()]).then(() => process.exit(0)));
