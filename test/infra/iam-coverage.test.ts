/**
 * Least privilege, both ways: every AWS SDK command that the code run by a
 * role can send is allowed to that role, and the role is allowed nothing else
 * but the exceptions listed here, each with its reason. The code of each role
 * is its entry point bundled by esbuild; the commands are the `new XCommand(`
 * in that bundle, named by the client they are imported from and by the
 * action IAM authorizes them with.
 */
import { Template } from 'aws-cdk-lib/assertions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/constructs/herald-function';
import { buildHeraldApp } from '../../bin/herald';
import { entryOrFixture, managedPolicyArnsOf, once, REGION, statementsOf, tempDir } from './infra-kit';

const CLIENT_PREFIX: Record<string, string> = {
  '@aws-sdk/client-sqs': 'sqs',
  '@aws-sdk/client-sns': 'sns',
  '@aws-sdk/client-dynamodb': 'dynamodb',
};

/**
 * Commands IAM authorizes as another action. SQS and SNS have no batch actions: a
 * batch call is allowed or denied as its single-message action, so granting
 * `sqs:DeleteMessageBatch` allows nothing and dropping `sqs:DeleteMessage`
 * denies every DeleteMessageBatch.
 */
const AUTHORIZED_AS: Readonly<Record<string, string>> = {
  'sqs:DeleteMessageBatch': 'sqs:DeleteMessage',
  'sqs:SendMessageBatch': 'sqs:SendMessage',
  'sqs:ChangeMessageVisibilityBatch': 'sqs:ChangeMessageVisibility',
  // SNS likewise: PublishBatch is allowed by sns:Publish.
  'sns:PublishBatch': 'sns:Publish',
};

interface Bundle {
  readonly code: string;
  /** The commands constructed, named `sqs:DeleteMessageBatch`-style after the command itself. */
  readonly commands: ReadonlySet<string>;
  /** Where in `code` a command is constructed, by the action IAM checks for it. */
  readonly constructed: ReadonlyMap<string, readonly number[]>;
}

/**
 * The bundle of `entry` and the SDK commands it constructs. Bundled with tree
 * shaking, so a helper module that is imported for one function does not bring
 * in the commands of the others (a class keeps all its methods, though).
 */
async function bundleOf(entry: string): Promise<Bundle> {
  const result = await build({ entryPoints: [entry], bundle: true, write: false, platform: 'node', format: 'esm', packages: 'external', treeShaking: true, logLevel: 'silent' });
  const code = result.outputFiles[0]?.text ?? '';
  const actionOf = new Map<string, string>();
  for (const [, names, from] of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*"(@aws-sdk\/client-[a-z-]+)"/g)) {
    const prefix = CLIENT_PREFIX[from ?? ''];
    if (prefix === undefined) continue;
    for (const name of (names ?? '').split(',')) {
      const [imported, local] = name.trim().split(/\s+as\s+/);
      if (imported?.endsWith('Command')) actionOf.set(local ?? imported, `${prefix}:${imported.slice(0, -'Command'.length)}`);
    }
  }
  const commands = new Set<string>();
  const constructed = new Map<string, number[]>();
  for (const match of code.matchAll(/new (\w+)\(/g)) {
    const command = actionOf.get(match[1] ?? '');
    if (command === undefined) continue;
    commands.add(command);
    const action = AUTHORIZED_AS[command] ?? command;
    constructed.set(action, [...(constructed.get(action) ?? []), match.index]);
  }
  return { code, commands, constructed };
}

/** One build per entry for the whole file (the node's takes a few seconds). */
const bundles = new Map<string, Promise<Bundle>>();
function bundle(entry: string): Promise<Bundle> {
  const found = bundles.get(entry) ?? bundleOf(projectPath(entry));
  bundles.set(entry, found);
  return found;
}

/** Where the bodies of the methods called `name` begin and end in esbuild's (unminified, two-space indented) output. */
function methodBodies(code: string, name: string): { start: number; end: number }[] {
  return [...code.matchAll(new RegExp(`^( *)(?:async )?${name}\\([^)]*\\) \\{$`, 'gm'))].map((match) => {
    const end = code.indexOf(`\n${match[1] ?? ''}}\n`, match.index);
    if (end < 0) throw new Error(`no end to the method ${name} at ${match.index}`);
    return { start: match.index, end };
  });
}

const app = once(() => {
  const { stack } = buildHeraldApp({
    env: {},
    outdir: tempDir('app'),
    context: { region: REGION, allowPlainHttp: true, 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:failSynthOnValidationErrors': false },
    overrides: { publisherEntry: entryOrFixture('services/publisher/lambda.ts'), janitorEntry: entryOrFixture('services/janitor/lambda.ts') },
  });
  return { stack, template: Template.fromStack(stack) };
});

function granted(role: iam.IRole): Set<string> {
  const { stack, template } = app();
  return new Set(statementsOf(template, stack, role).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])));
}

interface RoleCase {
  readonly role: () => iam.IRole;
  /** The entry point of the code that runs with the role; none for the execution role, which only ECS uses. */
  readonly entry?: string;
  /** Actions granted although no command of the code asks for them, each with why it is needed anyway. */
  readonly alsoGranted: Readonly<Record<string, string>>;
  /**
   * Actions of commands that the bundle constructs only in a method this role's
   * code never calls (esbuild keeps every method of a bundled class), so are
   * not granted: the method's name, and why the role never calls it.
   */
  readonly neverSent?: Readonly<Record<string, { readonly method: string; readonly reason: string }>>;
}

const TOPIC_KEY: Record<string, string> = {
  'kms:GenerateDataKey': 'SNS asks it of whoever publishes to a topic encrypted with a customer managed key',
  'kms:Decrypt': 'SNS asks it of whoever publishes to a topic encrypted with a customer managed key',
};
const INGEST_QUEUE = "Lambda's event source mapping reads and deletes the ingest queue's messages with the publisher's role";
const INGEST_POLLING: Record<string, string> = {
  'sqs:ReceiveMessage': INGEST_QUEUE,
  'sqs:DeleteMessage': INGEST_QUEUE,
  'sqs:ChangeMessageVisibility': INGEST_QUEUE,
  'sqs:GetQueueAttributes': INGEST_QUEUE,
  'sqs:GetQueueUrl': INGEST_QUEUE,
};
const LAMBDA_LOGS: Record<string, string> = {
  'logs:CreateLogStream': "Lambda writes the function's output to its own log group with the function's role",
  'logs:PutLogEvents': "Lambda writes the function's output to its own log group with the function's role",
};

/** Every role of the stack: the checks below cover each, and the stack may have no other. */
const ROLES: [string, RoleCase][] = [
  ['the node (task role)', { role: () => app().stack.service.taskRole, entry: 'services/node/main.ts', alsoGranted: TOPIC_KEY }],
  [
    'the node start-up (execution role)',
    {
      role: () => app().stack.service.executionRole,
      alsoGranted: {
        'ecr:GetAuthorizationToken': 'ECS signs in to ECR to pull the image',
        'ecr:BatchCheckLayerAvailability': 'ECS pulls the image from the CDK assets repository',
        'ecr:GetDownloadUrlForLayer': 'ECS pulls the image from the CDK assets repository',
        'ecr:BatchGetImage': 'ECS pulls the image from the CDK assets repository',
        'logs:CreateLogStream': "the awslogs driver writes the container's output to the service's log group",
        'logs:PutLogEvents': "the awslogs driver writes the container's output to the service's log group",
        'secretsmanager:GetSecretValue': 'ECS reads the HS256 secret at task start and injects it as HERALD_JWT_SECRET',
        'secretsmanager:DescribeSecret':
          "granted by the CDK beside GetSecretValue (ecs.Secret.fromSecretsManager grants the secret's read); it reads the secret's metadata, never its value",
      },
    },
  ],
  [
    'the publisher Lambda',
    {
      role: () => app().stack.publisher.role,
      entry: 'services/publisher/lambda.ts',
      alsoGranted: { ...TOPIC_KEY, ...LAMBDA_LOGS, ...INGEST_POLLING },
    },
  ],
  ['the janitor Lambda', { role: () => app().stack.janitor.role, entry: 'services/janitor/lambda.ts', alsoGranted: LAMBDA_LOGS }],
];
const WITH_CODE = ROLES.filter(([, c]) => c.entry !== undefined);

/** The actions of the commands the role's code sends: those its bundle constructs, less the `neverSent`. */
async function sent(c: RoleCase): Promise<Set<string>> {
  if (c.entry === undefined) return new Set();
  const { constructed } = await bundle(c.entry);
  return new Set([...constructed.keys()].filter((action) => c.neverSent?.[action] === undefined));
}

describe('IAM covers what the code sends', () => {
  it.each(WITH_CODE)('%s may send every command its code sends', async (_name, c) => {
    const needed = await sent(c);
    expect(needed.size).toBeGreaterThan(0);
    const allowed = granted(c.role());
    expect([...needed].filter((action) => !allowed.has(action)).sort()).toEqual([]);
  });

  it('checks a batch command against the action IAM authorizes it with, not its own name', async () => {
    // The node deletes what it handled with DeleteMessageBatch: without sqs:DeleteMessage every delete is denied.
    const { commands, constructed } = await bundle('services/node/main.ts');
    expect(commands.has('sqs:DeleteMessageBatch')).toBe(true);
    expect(commands.has('sqs:DeleteMessage')).toBe(false);
    expect(constructed.has('sqs:DeleteMessage')).toBe(true);
    expect([...constructed.keys()].filter((action) => action in AUTHORIZED_AS)).toEqual([]);
  });

  it.each(WITH_CODE.filter(([, c]) => c.neverSent !== undefined))(
    '%s never calls the method that alone constructs each command it is not granted',
    async (_name, c) => {
      const { code, constructed } = await bundle(c.entry ?? '');
      for (const [action, { method }] of Object.entries(c.neverSent ?? {})) {
        const bodies = methodBodies(code, method);
        const places = constructed.get(action) ?? [];
        expect(places.length, `${action} is constructed in the bundle (else drop it from neverSent)`).toBeGreaterThan(0);
        expect(places.every((at) => bodies.some((body) => at > body.start && at < body.end)), `${action} is constructed only in ${method}()`).toBe(true);
        expect(code.match(new RegExp(`\\.${method}\\(`, 'g')) ?? [], `nothing in the bundle calls .${method}()`).toEqual([]);
      }
    },
  );
});

describe('IAM allows nothing else', () => {
  it.each(ROLES)('%s is granted only what its code sends and the documented exceptions', async (_name, c) => {
    const needed = await sent(c);
    const extra = [...granted(c.role())].filter((action) => !needed.has(action) && c.alsoGranted[action] === undefined);
    expect(extra.sort()).toEqual([]);
  });

  it.each(ROLES)('%s has an exception only for an action it is granted and its code does not send', async (_name, c) => {
    const needed = await sent(c);
    const allowed = granted(c.role());
    const stale = Object.keys(c.alsoGranted).filter((action) => !allowed.has(action) || needed.has(action));
    expect(stale.sort()).toEqual([]);
  });

  it('grants no role a batch action, which IAM does not have', () => {
    const batch = ROLES.flatMap(([, c]) => [...granted(c.role())]).filter((action) => action in AUTHORIZED_AS);
    expect(batch).toEqual([]);
  });

  it('has no role but these four, and none with a managed policy (the Lambdas write only their own log group, no AWSLambdaBasicExecutionRole)', () => {
    const { stack, template } = app();
    const ids = ROLES.map(([, c]) => (stack.resolve(c.role().roleName) as { Ref: string }).Ref);
    expect(Object.keys(template.findResources('AWS::IAM::Role')).sort()).toEqual(ids.sort());
    for (const [name, c] of ROLES) expect(managedPolicyArnsOf(template, stack, c.role()), name).toEqual([]);
  });
});
