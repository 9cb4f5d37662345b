/**
 * Reading items through the Agent API: one item (a point read of the store) and a whole entity (a scan
 * of its items) agree, on a standalone machine's store and on a server's group store.
 */
import test from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { catalogItem } from '../../storage/catalog.js';
import { openAgent } from '../helpers/inprocess.js';

for (const role of ['standalone', 'server'] as const) {
  test(`${role}: getItems of one item, of an unset one and of the whole user agree with what was set`, async (t) => {
    const agent = await openAgent(t, role);
    if (role === 'server') await agent.setRole('server');
    const { version } = await agent.setItem('user', 'alice', 'language', { display: 'fr' });
    await agent.setItem('user', 'alice', 'address-list', [{ name: 'Bob', email: 'bob@example.com' }]);

    const one = await agent.getItems('user', 'alice', 'language');
    t.deepEqual(Object.keys(one.items), ['language']);
    t.deepEqual(one.items.language, { value: { display: 'fr' }, version, set: true });

    const unset = await agent.getItems('user', 'alice', 'job-defaults');
    t.deepEqual(unset.items['job-defaults'], { value: catalogItem('user', 'job-defaults').defaultValue, version: 0, set: false });

    const all = await agent.getItems('user', 'alice');
    t.deepEqual(all.items.language, one.items.language);
    t.deepEqual(all.items['job-defaults'], unset.items['job-defaults']);
    t.true(all.items['address-list']!.set);

    const missing = await t.throwsAsync(agent.getItems('user', 'nobody', 'language'));
    t.is((missing as MfpError).code, 'NOT_FOUND');
  });
}
