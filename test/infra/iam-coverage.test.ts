/**
 * Least privilege must still be enough: every AWS SDK command that the code
 * run by a role can send is allowed to that role. The code of each role is
 * its entry point bundled by esbuild; the commands are the `new XCommand(` in
 * that bundle, named by the client they are imported from.
 */
import { Template } from 'aws-cdk-lib/assertions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/constructs/herald-function';
import { buildHeraldApp } from '../../bin/herald';
import { entryOrFixture, once, REGION, statementsOf, tempDir } from './infra-kit';

const CLIENT_PREFIX: Record<string, string> = {
  '@aws-sdk/client-sqs': 'sqs',
  '@aws-sdk/client-sns': 'sns',
  '@aws-sdk/client-dynamodb': 'dynamodb',
};

/**
 * `sqs:CreateQueue`-style actions for every SDK command the bundle of `entry`
 * constructs. Bundled with tree shaking, so a helper module that is imported
 * for one function does not bring in the commands of the others.
 */
async function commandActions(entry: string): Promise<Set<string>> {
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
  const actions = new Set<string>();
  for (const [, identifier] of code.matchAll(/new (\w+)\(/g)) {
    const action = actionOf.get(identifier ?? '');
    if (action !== undefined) actions.add(action);
  }
  return actions;
}

const app = once(() => {
  const { stack } = buildHeraldApp({
    env: {},
    outdir: tempDir('app'),
    context: { region: REGION, 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:failSynthOnValidationErrors': false },
    overrides: { publisherEntry: entryOrFixture('services/publisher/lambda.ts'), janitorEntry: entryOrFixture('services/janitor/lambda.ts') },
  });
  return { stack, template: Template.fromStack(stack) };
});

function granted(role: iam.IRole): Set<string> {
  const { stack, template } = app();
  return new Set(statementsOf(template, stack, role).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])));
}

describe('IAM covers what the code sends', () => {
  it.each([
    ['the node (task role)', 'services/node/main.ts', () => app().stack.service.taskRole],
    ['the publisher Lambda', 'services/publisher/lambda.ts', () => app().stack.publisher.role],
    ['the janitor Lambda', 'services/janitor/lambda.ts', () => app().stack.janitor.role],
  ] as [string, string, () => iam.IRole][])('%s may send every command its code constructs', async (_name, entry, role) => {
    const needed = await commandActions(projectPath(entry));
    expect(needed.size).toBeGreaterThan(0);
    const allowed = granted(role());
    expect([...needed].filter((action) => !allowed.has(action)).sort()).toEqual([]);
  });
});
