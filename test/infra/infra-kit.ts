/**
 * Shared helpers for the infra tests: a bare stack in a throw-away app whose
 * output folder is removed after the test (Template.fromStack would otherwise
 * leave a cdk.outXXXX folder in the temp directory for every synth), and
 * readers for the IAM statements and managed policies of one role.
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

interface PolicyDocument {
  readonly Statement: Statement[];
}

interface RoleResource {
  readonly Properties: { ManagedPolicyArns?: unknown[]; Policies?: { PolicyDocument: PolicyDocument }[] };
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The AWS::IAM::Role resource of `role` (a role made in `stack`, not imported). */
function roleResource(template: Template, stack: Stack, role: iam.IRole): { ref: unknown; resource: RoleResource } {
  const ref = stack.resolve(role.roleName) as unknown;
  const id = (ref as { Ref?: unknown }).Ref;
  const resource = typeof id === 'string' ? (template.findResources('AWS::IAM::Role')[id] as RoleResource | undefined) : undefined;
  if (resource === undefined) throw new Error(`no AWS::IAM::Role in the template for ${JSON.stringify(ref)}`);
  return { ref, resource };
}

/** Every entry of the role's ManagedPolicyArns, resolved: AWS managed policies and the template's own alike. */
export function managedPolicyArnsOf(template: Template, stack: Stack, role: iam.IRole): unknown[] {
  return roleResource(template, stack, role).resource.Properties.ManagedPolicyArns ?? [];
}

/**
 * Every statement that applies to `role`, in order: its inline policies, then
 * the AWS::IAM::Policy and AWS::IAM::ManagedPolicy resources attached to it
 * (by their Roles or by its ManagedPolicyArns). Throws when the role has a
 * managed policy that is not in the template (an AWS managed one): its
 * statements cannot be read here, so no list of statements would be complete.
 */
export function statementsOf(template: Template, stack: Stack, role: iam.IRole): Statement[] {
  const { ref, resource } = roleResource(template, stack, role);
  const inline = (resource.Properties.Policies ?? []).flatMap((policy) => policy.PolicyDocument.Statement);
  const attached = (type: string, listed: unknown[]): Statement[] =>
    Object.entries(template.findResources(type) as Record<string, { Properties: { Roles?: unknown[]; PolicyDocument: PolicyDocument } }>)
      .filter(([id, policy]) => (policy.Properties.Roles ?? []).some((r) => same(r, ref)) || listed.some((arn) => same(arn, { Ref: id })))
      .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement);
  const managed = managedPolicyArnsOf(template, stack, role);
  const outside = managed.filter((arn) => !Object.keys(template.findResources('AWS::IAM::ManagedPolicy')).some((id) => same(arn, { Ref: id })));
  if (outside.length > 0) throw new Error(`the role has managed policies whose statements are not in the template: ${JSON.stringify(outside)}`);
  return [...inline, ...attached('AWS::IAM::Policy', []), ...attached('AWS::IAM::ManagedPolicy', managed)];
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
