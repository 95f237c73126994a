// ioredis 5 against a two-node rumor mesh at the library's default
// settings (RESP2, a ready check through INFO). Usage:
// node ioredis.mjs HOST:PORT HOST:PORT
import { createRequire } from 'node:module';
import Redis from 'ioredis';

import { addresses, check, deadline, waitFor } from './common.mjs';

deadline(60_000);
const [a, b] = addresses();
const version = createRequire(import.meta.url)('ioredis/package.json').version;
check('ioredis is version 5', version.startsWith('5.'), version);

const errors = [];
const one = new Redis({ host: a.host, port: a.port });
const other = new Redis({ host: b.host, port: b.port });
for (const client of [one, other]) {
  client.on('error', (error) => errors.push(error));
}
check('PING', (await one.ping()) === 'PONG');
check('SET', (await one.set('io:greeting', 'hello')) === 'OK');
check('GET', (await one.get('io:greeting')) === 'hello');
check('GET of a missing key is null', (await one.get('io:missing')) === null);
await waitFor('io:greeting on the other node', 10_000, async () => (await other.get('io:greeting')) === 'hello');
check('a write on one node is read on the other', true);

// A transaction: MULTI … EXEC.
const txReplies = await one.multi().set('io:tx:a', '1').set('io:tx:b', '2').mget('io:tx:a', 'io:tx:b').exec();
check(
  'multi().exec() runs the transaction',
  JSON.stringify(txReplies) === JSON.stringify([[null, 'OK'], [null, 'OK'], [null, ['1', '2']]]),
  JSON.stringify(txReplies),
);

// A plain pipeline.
const results = await one
  .pipeline()
  .set('io:pipe:1', '1')
  .get('io:pipe:1')
  .mget('io:pipe:1', 'io:missing')
  .exists('io:pipe:1', 'io:missing')
  .del('io:pipe:1')
  .exec();
const values = results.map(([error, value]) => (error ? `error: ${error.message}` : value));
check(
  'pipeline replies in order',
  JSON.stringify(values) === JSON.stringify(['OK', '1', ['1', null], 1, 1]),
  JSON.stringify(values),
);

const scanned = await new Promise((resolve, reject) => {
  const keys = [];
  for (let i = 0; i < 30; i++) {
    one.set(`io:scan:${i}`, String(i));
  }
  one
    .scanStream({ match: 'io:scan:*', count: 7 })
    .on('data', (batch) => keys.push(...batch))
    .on('end', () => resolve(new Set(keys).size))
    .on('error', reject);
});
check('scanStream finds every key', scanned === 30, String(scanned));
check('CLIENT SETNAME/GETNAME', (await one.client('SETNAME', 'io-client')) === 'OK' && (await one.client('GETNAME')) === 'io-client');

await one.quit();
await other.quit();
check('no client errors', errors.length === 0, errors.map(String).join('; '));
console.log('ioredis: all checks passed');
