/**
 * The live heap of an agent process started with `nodeArgs: ['--inspect=127.0.0.1:0']`, read through the
 * inspector protocol after a full garbage collection: what the process keeps, without the garbage that
 * RSS also counts until V8 next collects.
 */
import WebSocket from 'ws';
import type { AgentProcess } from '../../tools/fleet.js';

/** Node's flags that make an agent's heap readable by `retainedHeap`. */
export const INSPECTABLE = ['--inspect=127.0.0.1:0'];

/** Bytes of the agent's heap still reachable after a full collection. */
export async function retainedHeap(agent: AgentProcess): Promise<number> {
  // The newest incarnation's inspector: stderr keeps the lines of every start.
  const url = [...agent.stderr.matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1];
  if (url === undefined) throw new Error(`agent ${agent.options.name} has no inspector (start it with nodeArgs: INSPECTABLE)`);
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  let id = 0;
  const call = (method: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const mine = ++id;
    const onMessage = (data: WebSocket.RawData): void => {
      const reply = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (reply.id !== mine) return;
      ws.off('message', onMessage);
      if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
      else resolve(reply.result ?? {});
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id: mine, method }));
  });
  try {
    await call('HeapProfiler.collectGarbage');
    const usage = await call('Runtime.getHeapUsage');
    return usage.usedSize as number;
  } finally {
    ws.close();
  }
}
