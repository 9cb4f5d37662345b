/** The KvStore contract, run against the LevelDB backend on a real folder in a temp dir. */
import { join } from 'node:path';
import { LevelKv } from '../../storage/level-kv.js';
import { tempDir } from '../helpers/tmp.js';
import { kvSuite } from './kv-suite.js';

kvSuite('level', async (t) => new LevelKv(join(tempDir(t), 'db')));
