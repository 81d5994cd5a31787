// `npm run token -- <user>` prints a token for that user, signed with the dev
// server's secret; `npm run token -- --publisher` prints its publisher token.
// Only for dev mode: production tokens come from your identity provider.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';

interface DevSecrets {
  readonly url: string;
  readonly jwtSecret: string;
  readonly publishToken: string;
}

const [first, ...rest] = process.argv.slice(2);
let secrets: DevSecrets;
try {
  secrets = JSON.parse(readFileSync(join(process.cwd(), '.herald', 'dev.json'), 'utf8')) as DevSecrets;
} catch {
  console.error('No .herald/dev.json: start the dev server first with `npm start` (without HERALD_JWT_SECRET).');
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
  console.error('usage: npm run token -- <user> [--ttl seconds]   |   npm run token -- --publisher');
  process.exit(2);
}
