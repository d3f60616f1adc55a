// One gossip member in its own process, for test/membership.test.ts. It prints one JSON
// line per event on stdout ({"ready":addr} first) and takes JSON commands on stdin:
// {"join":[addr]}, {"tags":{...}}, {"leave":true}.
import { createInterface } from 'node:readline';
import { Membership, membershipDefaults } from '../src/membership/index.js';

const [name, key] = process.argv.slice(2);
if (!name) throw new Error('usage: membership-child <name> [base64 key]');
const membership = new Membership({
  name,
  bindPort: 0,
  protocol: membershipDefaults.local(),
  ...(key ? { encryptionKey: key } : {}),
});
const print = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
membership.on('event', (e) => print({ event: e }));
await membership.start();
print({ ready: membership.address });

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as {
    join?: string[];
    tags?: Record<string, string>;
    leave?: boolean;
  };
  if (cmd.join) print({ joined: await membership.join(cmd.join) });
  if (cmd.tags) membership.setTags(cmd.tags);
  if (cmd.leave) {
    await membership.leave();
    print({ left: true });
    process.exit(0);
  }
}
await membership.close();
