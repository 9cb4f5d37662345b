/** The domain stores over LevelDB folders in a temp dir, including closing and opening them again. */
import { join } from 'node:path';
import { LevelKv } from '../../storage/level-kv.js';
import { tempDir } from '../helpers/tmp.js';
import { storeSuite } from './store-suite.js';

storeSuite('level', (t) => new LevelKv(join(tempDir(t), 'db')), (kv) => new LevelKv((kv as LevelKv).location));
