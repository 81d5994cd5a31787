import { fileURLToPath } from 'node:url';
import type { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The repository root: bundling resolves `package-lock.json` and the entries from here. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function projectPath(relative: string): string {
  return fileURLToPath(new URL(relative, new URL('../../', import.meta.url)));
}

export interface HeraldFunctionProps {
  /** The TypeScript file exporting `handler`. */
  readonly entry: string;
  readonly description: string;
  readonly environment: Record<string, string>;
  readonly timeout: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A Herald Lambda: Node 24 on ARM64, bundled locally by esbuild into one ESM
 * file that includes the AWS SDK versions the tests ran against, with its own
 * role that can write only to its own log group (no managed policy).
 */
export class HeraldFunction extends Construct {
  readonly function: lambda.IFunction;
  readonly role: iam.IRole;

  constructor(scope: Construct, id: string, props: HeraldFunctionProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    const role = new iam.Role(this, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: props.description });
    // Instead of AWSLambdaBasicExecutionRole (logs on every group in the account): this group only.
    logGroup.grantWrite(role);
    const fn = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: projectPath('package-lock.json'),
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout,
      description: props.description,
      role,
      logGroup,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        // Bundle the SDK too: the function runs the versions package-lock.json pins, not the runtime's.
        externalModules: [],
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // esbuild's size summary is noise in every synth and test run; its warnings and errors still show.
        logLevel: nodejs.LogLevel.WARNING,
        // Some dependencies are CommonJS and call require(): give the ESM bundle one.
        banner: "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);",
        // Bundle with the local esbuild (a devDependency), not in Docker, which there may be no engine for.
        // If esbuild could not run, the CDK would still try Docker, and fail: `npm ci` installs it.
        forceDockerBundling: false,
      },
    });
    this.function = fn;
    this.role = role;
  }
}
