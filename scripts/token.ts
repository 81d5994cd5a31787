// `npm run token -- <user>` prints a token for that user, signed with the dev
// server's secret; `npm run token -- --publisher` prints its publisher token.
// With `--cluster`, both come from `npm run cluster`'s .herald/cluster.json
// instead of the dev server's .herald/dev.json. With `--env`, from this shell's
// HERALD_JWT_SECRET (and HERALD_JWT_ISSUER / HERALD_JWT_AUDIENCE) and
// HERALD_PUBLISH_TOKEN: what a node started with those variables accepts.
// Only for development: production tokens come from your identity provider.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';

const USAGE = `usage: npm run -s token -- [--cluster | --env] <user> [--ttl seconds]
       npm run -s token -- [--cluster | --env] --publisher`;

interface Signing {
  /** HS256 key bytes. */
  readonly key: Uint8Array;
  readonly publishToken: string | undefined;
  readonly issuer?: string;
  readonly audience?: string;
}

/** The dev server's or the local cluster's secrets, as it wrote them (the key in base64url). */
interface SecretsFile {
  readonly url: string;
  readonly jwtSecret: string;
  readonly publishToken: string;
}

function fail(message: string, status = 1): never {
  console.error(message);
  process.exit(status);
}

/**
 * A file left by a server that is gone (killed, or the machine restarted) would
 * sign tokens no running server accepts: ask it first.
 */
async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

async function fromFile(cluster: boolean): Promise<Signing> {
  const name = cluster ? 'cluster.json' : 'dev.json';
  const start = cluster ? '`npm run cluster`' : '`npm start` (without HERALD_JWT_SECRET)';
  let secrets: SecretsFile;
  try {
    secrets = JSON.parse(readFileSync(join(process.cwd(), '.herald', name), 'utf8')) as SecretsFile;
  } catch {
    fail(`No .herald/${name}: start ${cluster ? 'the cluster' : 'the dev server'} first with ${start}.`);
  }
  if (!(await answers(secrets.url))) {
    fail(`.herald/${name} is from ${cluster ? 'a cluster' : 'a dev server'} that no longer answers at ${secrets.url}: start it again with ${start}.`);
  }
  return { key: Buffer.from(secrets.jwtSecret, 'base64url'), publishToken: secrets.publishToken };
}

function fromEnvironment(): Signing {
  const secret = process.env.HERALD_JWT_SECRET;
  if (secret === undefined || secret === '') fail('--env signs with HERALD_JWT_SECRET, which is not set in this shell.');
  const { HERALD_JWT_ISSUER: issuer, HERALD_JWT_AUDIENCE: audience } = process.env;
  return {
    // The node's HS256 key is the secret's UTF-8 bytes (services/node/config.ts).
    key: new TextEncoder().encode(secret),
    publishToken: process.env.HERALD_PUBLISH_TOKEN,
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
  };
}

const args = process.argv.slice(2);
const cluster = args.includes('--cluster');
const env = args.includes('--env');
const [first, ...rest] = args.filter((a) => a !== '--cluster' && a !== '--env');
if (cluster && env) fail(USAGE, 2);
if (!cluster && !env && process.env.HERALD_JWT_SECRET) {
  // A node started from this shell uses that secret, not .herald/dev.json: a token from the file would be refused as token_invalid.
  fail('HERALD_JWT_SECRET is set, so a node started from this shell does not use .herald/dev.json. Sign with that secret instead: npm run -s token -- --env <user>');
}
const signing = env ? fromEnvironment() : await fromFile(cluster);

if (first === '--publisher') {
  if (signing.publishToken === undefined) fail('HERALD_PUBLISH_TOKEN is not set in this shell: it is the publisher token, whatever you set it to.');
  console.log(signing.publishToken);
} else if (first && !first.startsWith('-')) {
  const ttlFlag = rest.indexOf('--ttl');
  const ttlSeconds = ttlFlag >= 0 ? Number(rest[ttlFlag + 1]) : 3600;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) fail('--ttl is a whole number of seconds above 0', 2);
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(first).setIssuedAt().setExpirationTime(`${ttlSeconds}s`);
  if (signing.issuer !== undefined) jwt = jwt.setIssuer(signing.issuer);
  if (signing.audience !== undefined) jwt = jwt.setAudience(signing.audience);
  console.log(await jwt.sign(signing.key));
} else {
  fail(USAGE, 2);
}
