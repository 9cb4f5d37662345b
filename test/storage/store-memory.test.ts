/** The domain stores over the in-memory backend. */
import { MemoryKv } from '../../storage/memory-kv.js';
import { storeSuite } from './store-suite.js';

storeSuite('memory', () => new MemoryKv());
