/**
 * Shared helpers for the infra tests: a bare stack in a throw-away app whose
 * output folder is removed after the test (Template.fromStack would otherwise
 * leave a cdk.outXXXX folder in the temp directory for every synth), and
 * readers for the IAM statements of one role.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { onTestFinished } from 'vitest';
import { projectPath } from '../../lib/constructs/herald-function';

export const REGION = 'us-east-1';

/** A folder under the system temp directory, removed when the current test ends. */
export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `herald-${label}-`));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A stack in a fresh app that skips Lambda bundling (the entries only have to
 * exist) and synthesizes into a folder removed after the test.
 */
export function bareStack(context: Record<string, unknown> = {}): Stack {
  const app = new App({ outdir: tempDir('cdk'), context: { 'aws:cdk:bundling-stacks': [], ...context } });
  return new Stack(app, 'Test', { env: { region: REGION } });
}

/**
 * The Lambda entry to use: the real one when it exists, else a stand-in under
 * test/infra/fixtures (the entries are written in parallel with this stack).
 */
export function entryOrFixture(relative: 'services/publisher/lambda.ts' | 'services/janitor/lambda.ts'): string {
  const real = projectPath(relative);
  return existsSync(real) ? real : projectPath('test/infra/fixtures/lambda-handler.ts');
}

export interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: unknown;
}

/** Every statement of every AWS::IAM::Policy attached to `role`, in order. */
export function statementsOf(template: Template, stack: Stack, role: iam.IRole): Statement[] {
  const roleRef = stack.resolve(role.roleName) as unknown;
  const policies = Object.values(template.findResources('AWS::IAM::Policy')) as {
    Properties: { Roles: unknown[]; PolicyDocument: { Statement: Statement[] } };
  }[];
  return policies
    .filter((policy) => policy.Properties.Roles.some((r) => JSON.stringify(r) === JSON.stringify(roleRef)))
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement);
}

/** The statements as `action list → resource`, easy to compare whole. */
export function grantsOf(template: Template, stack: Stack, role: iam.IRole): { actions: string[]; resource: unknown }[] {
  return statementsOf(template, stack, role).map((s) => {
    if (s.Effect !== 'Allow' || s.Condition !== undefined) throw new Error(`unexpected statement ${JSON.stringify(s)}`);
    return { actions: Array.isArray(s.Action) ? s.Action : [s.Action], resource: s.Resource };
  });
}

/** `stack.resolve` for the values the tests compare against. */
export function resolved(stack: Stack, value: unknown): unknown {
  return stack.resolve(value);
}

/**
 * A value computed on first use and shared by the tests of a file that only
 * read it: one synth instead of one per test. A Template lives in memory, so
 * its synth folder may go when the first test ends.
 */
export function once<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}
