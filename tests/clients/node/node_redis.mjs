// node-redis 6 against a two-node rumor mesh at the library's default
// settings. Usage: node node_redis.mjs HOST:PORT HOST:PORT
import { createRequire } from 'node:module';
import { createClient } from 'redis';

import { addresses, check, deadline, waitFor } from './common.mjs';

deadline(60_000);
const [a, b] = addresses();
const version = createRequire(import.meta.url)('redis/package.json').version;
check('node-redis is version 6', version.startsWith('6.'), version);

const errors = [];
const one = createClient({ socket: { host: a.host, port: a.port } });
const other = createClient({ socket: { host: b.host, port: b.port } });
for (const client of [one, other]) {
  client.on('error', (error) => errors.push(error));
}
await one.connect();
await other.connect();
check('connects', one.isReady && other.isReady);

const info = await one.sendCommand(['CLIENT', 'INFO']);
const resp = /resp=(\d)/.exec(String(info))?.[1];
console.log(`node-redis negotiated RESP${resp}`);
check('the connection negotiated RESP3 (HELLO 3)', resp === '3', String(info));

check('PING', (await one.ping()) === 'PONG');
check('SET', (await one.set('node:greeting', 'hello')) === 'OK');
check('GET', (await one.get('node:greeting')) === 'hello');
check('GET of a missing key is null', (await one.get('node:missing')) === null);
await waitFor('node:greeting on the other node', 10_000, async () => (await other.get('node:greeting')) === 'hello');
check('a write on one node is read on the other', true);

// Commands issued together are pipelined by node-redis.
const many = await Promise.all(Array.from({ length: 100 }, (_, i) => one.set(`node:auto:${i}`, String(i))));
check('auto-pipelined SETs', many.length === 100 && many.every((reply) => reply === 'OK'));

// A transaction, and WATCH aborted by the other node's write.
const txReplies = await one.multi().set('node:tx:a', '1').set('node:tx:b', '2').mGet(['node:tx:a', 'node:tx:b']).exec();
check(
  'multi().exec() runs the transaction',
  JSON.stringify(txReplies) === JSON.stringify(['OK', 'OK', ['1', '2']]),
  JSON.stringify(txReplies),
);
const watcher = await one.duplicate().connect();
await watcher.watch('node:tx:a');
await other.set('node:tx:a', 'changed');
await waitFor('the other node\'s write', 10_000, async () => (await one.get('node:tx:a')) === 'changed');
let aborted = false;
try {
  await watcher.multi().set('node:tx:a', 'mine').exec();
} catch (error) {
  aborted = error.constructor.name === 'WatchError' || /watch/i.test(String(error));
}
check('WATCH aborts on the other node\'s write', aborted && (await one.get('node:tx:a')) === 'changed');
await watcher.quit();

// An explicit pipeline without MULTI/EXEC.
const replies = await one
  .multi()
  .set('node:pipe:1', '1')
  .get('node:pipe:1')
  .mGet(['node:pipe:1', 'node:missing'])
  .exists(['node:pipe:1', 'node:missing'])
  .del('node:pipe:1')
  .execAsPipeline();
check(
  'execAsPipeline replies in order',
  JSON.stringify(replies) === JSON.stringify(['OK', '1', ['1', null], 1, 1]),
  JSON.stringify(replies),
);

check('SET EX and TTL', (await one.set('node:ttl', 'v', { EX: 100 })) === 'OK' && (await one.ttl('node:ttl')) > 0);
const config = await one.configGet('maxclients');
check('CONFIG GET', config && config.maxclients !== undefined, JSON.stringify(config));
const keys = [];
for await (const batch of one.scanIterator({ MATCH: 'node:auto:*', COUNT: 10 })) {
  keys.push(...batch);
}
check('scanIterator finds every key', new Set(keys).size === 100, String(keys.length));
check('INFO', String(await one.info('server')).includes('redis_version:'));

await one.quit();
await other.quit();
check('no client errors', errors.length === 0, errors.map(String).join('; '));
console.log('node-redis: all checks passed');
