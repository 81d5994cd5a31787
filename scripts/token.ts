// `npm run token -- <user>` prints a token for that user, signed with the dev
// server's secret; `npm run token -- --publisher` prints its publisher token.
// With `--cluster`, both come from `npm run cluster`'s .herald/cluster.json
// instead of the dev server's .herald/dev.json.
// Only for dev mode and the local cluster: production tokens come from your identity provider.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';

interface DevSecrets {
  readonly url: string;
  /** The HS256 key bytes, base64url. */
  readonly jwtSecret: string;
  readonly publishToken: string;
}

const args = process.argv.slice(2);
const cluster = args.includes('--cluster');
const [first, ...rest] = args.filter((a) => a !== '--cluster');
const file = join(process.cwd(), '.herald', cluster ? 'cluster.json' : 'dev.json');
let secrets: DevSecrets;
try {
  secrets = JSON.parse(readFileSync(file, 'utf8')) as DevSecrets;
} catch {
  console.error(
    cluster
      ? 'No .herald/cluster.json: start the cluster first with `npm run cluster`.'
      : 'No .herald/dev.json: start the dev server first with `npm start` (without HERALD_JWT_SECRET).',
  );
  process.exit(1);
}

if (first === '--publisher') {
  console.log(secrets.publishToken);
} else if (first && !first.startsWith('-')) {
  const ttlFlag = rest.indexOf('--ttl');
  const ttlSeconds = ttlFlag >= 0 ? Number(rest[ttlFlag + 1]) : 3600;
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(first)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(Buffer.from(secrets.jwtSecret, 'base64url'));
  console.log(token);
} else {
  console.error('usage: npm run token -- [--cluster] <user> [--ttl seconds]   |   npm run token -- [--cluster] --publisher');
  process.exit(2);
}
