import { Duration } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { HeraldFunction, projectPath } from './herald-function';
import type { HeraldTable } from './herald-table';
import type { NodeBus } from './node-bus';

export interface PublisherFunctionProps {
  readonly bus: NodeBus;
  readonly table: HeraldTable;
  /**
   * The handler's source file (export `handler`).
   * @default - services/publisher/lambda.ts
   */
  readonly entry?: string;
  /**
   * Extra settings: `HERALD_MAX_DATA_BYTES`, `HERALD_HISTORY_TTL_SECONDS`,
   * `HERALD_HISTORY_SIZE`, `HERALD_PUBLISH_RATE`, `HERALD_PUBLISH_BURST`.
   * @default - none: the same defaults as the nodes
   */
  readonly environment?: Record<string, string>;
}

/**
 * The Lambda publisher that chat and job code invoke (docs/architecture.md,
 * "Shapes"): history first, then owners, then the topic.
 */
export class PublisherFunction extends Construct {
  readonly function: lambda.IFunction;
  readonly role: iam.IRole;

  constructor(scope: Construct, id: string, props: PublisherFunctionProps) {
    super(scope, id);
    const { function: fn, role } = new HeraldFunction(this, 'Publisher', {
      entry: props.entry ?? projectPath('services/publisher/lambda.ts'),
      description: 'Herald publisher: validates notifications, stores history, routes them to the nodes',
      timeout: Duration.seconds(30),
      environment: {
        ...props.environment,
        HERALD_TOPIC_ARN: props.bus.topic.topicArn,
        HERALD_TABLE_NAME: props.table.table.tableName,
      },
    });
    props.bus.grantPublish(role);
    props.table.grantPublisher(role);
    this.function = fn;
    this.role = role;
  }

  /** Lets `grantee` (your chat or job code's role) invoke the publisher, and nothing else. */
  grantPublish(grantee: iam.IGrantable): iam.Grant {
    return this.function.grantInvoke(grantee);
  }
}
