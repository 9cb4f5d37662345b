/**
 * Heartbeat messages. The client sends `ping` every heartbeat interval with its clock and cursor; the
 * server answers `pong` with its clock. Three missed intervals and either side considers the other gone.
 *
 * A client whose machine goes to sleep says so: client → `sleep` {its clock}; the server marks it
 * sleeping at once (it no longer blocks the server's deep sleep) and closes the session, which is the
 * client's acknowledgement. No heartbeats follow; on waking the client reconnects and resumes by cursor,
 * and its hello counts as its first heartbeat again.
 */
import { MfpError } from './errors.js';
import { describeValue, type Fields, int } from './validate.js';

/** Message types of the heartbeat family. */
export const HeartbeatType = { Ping: 'ping', Pong: 'pong', Sleep: 'sleep' } as const;

export interface PingMessage { type: typeof HeartbeatType.Ping; at: number; cursor: number }
export interface PongMessage { type: typeof HeartbeatType.Pong; at: number; echo: number }
export interface SleepMessage { type: typeof HeartbeatType.Sleep; at: number }
export type HeartbeatMessage = PingMessage | PongMessage | SleepMessage;

/** Validates a decoded heartbeat message. */
export function readHeartbeatMessage(o: Fields): HeartbeatMessage {
  switch (o.type) {
    case HeartbeatType.Ping:
      return { type: HeartbeatType.Ping, at: int('ping', o, 'at'), cursor: int('ping', o, 'cursor') };
    case HeartbeatType.Pong:
      return { type: HeartbeatType.Pong, at: int('pong', o, 'at'), echo: int('pong', o, 'echo') };
    case HeartbeatType.Sleep:
      return { type: HeartbeatType.Sleep, at: int('sleep', o, 'at') };
    default:
      throw new MfpError('MESSAGE_UNKNOWN', `unknown heartbeat message ${describeValue(o.type)}`);
  }
}
