/** The KvStore contract, run against the in-memory backend. */
import { MemoryKv } from '../../storage/memory-kv.js';
import { kvSuite } from './kv-suite.js';

kvSuite('memory', async () => new MemoryKv());
