/**
 * The CDK app (`cdk.json`: `npx tsx bin/herald.ts`): reads the deployment
 * settings from context or the environment, validates them, builds the stack
 * and runs cdk-nag's AwsSolutions checks over it, so `cdk synth` fails on any
 * finding not acknowledged in lib/nag-suppressions.ts.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { HeraldStack, type HeraldStackProps } from '../lib/herald-stack';
import { acknowledgeNagFindings } from '../lib/nag-suppressions';
import { readHeraldSettings, SettingError, type Env } from './herald-settings';

export interface BuildOptions {
  /** Context, as `-c key=value` would give it. @default - the CLI's (CDK_CONTEXT_JSON) */
  readonly context?: Record<string, unknown>;
  /** @default process.env */
  readonly env?: Env;
  /** @default - the CLI's output directory, or a temporary one */
  readonly outdir?: string;
  /** Overrides applied after validation (tests: fixture Lambda entries, a prebuilt image). */
  readonly overrides?: Partial<HeraldStackProps>;
}

export function buildHeraldApp(options: BuildOptions = {}): { app: App; stack: HeraldStack } {
  const env = options.env ?? process.env;
  const appProps: AppProps = {
    ...(options.context === undefined ? {} : { context: options.context }),
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
  };
  const app = new App(appProps);
  const { stackName, region, props } = readHeraldSettings((key) => app.node.tryGetContext(key), env);
  const account = env.CDK_DEFAULT_ACCOUNT;
  const stack = new HeraldStack(app, stackName, {
    ...props,
    ...options.overrides,
    description: 'Herald: notifications from back-end code to browsers over Server-Sent Events',
    // Account-agnostic unless the CLI knows it (deploy): synth then needs no credentials and makes no lookups.
    env: account === undefined ? { region } : { account, region },
  });
  // The acknowledgements and their reasons are also written into the template's Metadata, for whoever audits the deployed stack.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }));
  acknowledgeNagFindings(stack);
  return { app, stack };
}

function isMain(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
}

if (isMain()) {
  try {
    buildHeraldApp().app.synth();
  } catch (error) {
    if (!(error instanceof SettingError)) throw error;
    process.stderr.write(`herald: ${error.message}\n`);
    process.exit(1);
  }
}
