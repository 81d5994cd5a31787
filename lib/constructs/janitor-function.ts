import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { HeraldFunction, projectPath } from './herald-function';
import type { HeraldTable } from './herald-table';
import type { NodeBus } from './node-bus';

export interface JanitorFunctionProps {
  readonly bus: NodeBus;
  readonly table: HeraldTable;
  /**
   * The handler's source file (export `handler`).
   * @default - services/janitor/lambda.ts
   */
  readonly entry?: string;
  /**
   * How often it runs.
   * @default Duration.minutes(5)
   */
  readonly interval?: Duration;
}

/**
 * Removes the queues and subscriptions of nodes whose heartbeat expired
 * (crashed tasks never run their own clean-up). A run ends well before the
 * next starts, so runs do not overlap; no concurrency is reserved, which new
 * accounts with a 10-execution limit could not grant.
 */
export class JanitorFunction extends Construct {
  readonly function: lambda.IFunction;
  readonly role: iam.IRole;

  constructor(scope: Construct, id: string, props: JanitorFunctionProps) {
    super(scope, id);
    const { function: fn, role } = new HeraldFunction(this, 'Janitor', {
      entry: props.entry ?? projectPath('services/janitor/lambda.ts'),
      description: 'Herald janitor: removes the queues and subscriptions of dead nodes',
      timeout: Duration.minutes(2),
      environment: {
        HERALD_TOPIC_ARN: props.bus.topic.topicArn,
        HERALD_TABLE_NAME: props.table.table.tableName,
        HERALD_QUEUE_PREFIX: props.bus.queuePrefix,
      },
    });
    props.bus.grantJanitor(role);
    props.table.grantJanitor(role);
    new events.Rule(this, 'Schedule', {
      description: 'Runs the Herald janitor',
      schedule: events.Schedule.rate(props.interval ?? Duration.minutes(5)),
      // The next run retries anyway.
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0 })],
    });
    this.function = fn;
    this.role = role;
  }
}
