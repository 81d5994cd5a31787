/**
 * The scheduled janitor Lambda (NodejsFunction entry services/janitor/lambda.ts,
 * export `handler`): one sweep per run. Settings from the environment:
 * HERALD_TOPIC_ARN, HERALD_TABLE_NAME, HERALD_QUEUE_PREFIX (HERALD_LOG_LEVEL optional).
 *
 * A run in which any step failed ends with an error after the whole sweep, so
 * the function's error metric (and its alarm) sees a janitor that cannot do its job.
 */
import { createAwsClients, type AwsClientOptions, type AwsClients } from '../adapters/aws/sdk-clients';
import type { Clock } from '../ports/clock';
import { createLogger, isLogLevel, type Logger } from '../shared/log';
import { ConfigError, EnvReader, readAwsSettings, readQueuePrefix, type Env } from '../shared/settings';
import { sweep, type JanitorDeps, type SweepReport } from './janitor';

export type JanitorHandler = () => Promise<SweepReport>;

/** For tests: what the environment would otherwise decide. */
export interface JanitorOverrides {
  /** @default JSON lines on stdout at HERALD_LOG_LEVEL */
  readonly log?: Logger;
  /** @default createAwsClients(env, clientOptions) */
  readonly clients?: AwsClients;
  readonly clientOptions?: AwsClientOptions;
  readonly clock?: Clock;
}

/** Configured from `env` on the first run; a bad setting fails that run and every later one, naming the variable. */
export function createJanitorHandler(env: Env, overrides: JanitorOverrides = {}): JanitorHandler {
  let ready: JanitorDeps | Error | undefined;
  return async () => {
    ready ??= configure(env, overrides);
    if (ready instanceof Error) throw ready;
    const report = await sweep(ready);
    if (report.failed.length > 0) {
      throw new Error(`janitor: ${report.failed.length} step(s) failed, first ${report.failed[0]!.step} on ${report.failed[0]!.target}; see janitor.step_failed in the log`);
    }
    return report;
  };
}

let fromEnvironment: JanitorHandler | undefined;

export async function handler(): Promise<SweepReport> {
  fromEnvironment ??= createJanitorHandler(process.env);
  return fromEnvironment();
}

function configure(env: Env, overrides: JanitorOverrides): JanitorDeps | Error {
  const level = env.HERALD_LOG_LEVEL?.trim() ?? '';
  const log = overrides.log ?? createLogger({ level: isLogLevel(level) ? level : 'info' });
  try {
    const read = new EnvReader(env);
    read.oneOf('HERALD_LOG_LEVEL', 'info', ['debug', 'info', 'warn', 'error']);
    const why = 'for the Herald janitor';
    const { topicArn, tableName } = readAwsSettings(read, why);
    const queuePrefix = readQueuePrefix(read, why);
    const { sns, sqs, dynamo } = overrides.clients ?? createAwsClients(env, overrides.clientOptions);
    return { sns, sqs, dynamo, topicArn, tableName, queuePrefix, log, ...(overrides.clock ? { clock: overrides.clock } : {}) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log.error('config.invalid', { variable: error.variable, message: error.message });
    return new Error(`Herald janitor is misconfigured: ${error.message}`, { cause: error });
  }
}
