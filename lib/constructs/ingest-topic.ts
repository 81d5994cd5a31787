import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { TOPIC_KEY_ACTIONS } from './node-bus';

export interface IngestTopicProps {
  /** Encrypts the topic (the bus's key: publishers of either need the same key use). */
  readonly key: kms.IKey;
  /** Runs `publish()` on each message (services/publisher/lambda.ts); its timeout must be well under the queue's visibility timeout. */
  readonly publisher: lambda.IFunction;
  /**
   * How long a message the publisher handed back (a fault, a spent budget)
   * stays hidden before it is tried again.
   * @default Duration.minutes(3) - six times the publisher's 30 s timeout, as Lambda advises for SQS sources
   */
  readonly visibilityTimeout?: Duration;
}

/** Tries of one message before it moves to the dead-letter queue: a few minutes of a backing service's outage. */
export const INGEST_MAX_RECEIVES = 5;

/**
 * Where services publish by SNS (docs/architecture.md, "Shapes",
 * AWS): a message is a
 * `POST /publish` body, and the publisher Lambda runs `publish()` on it —
 * history, presence, routing to the nodes holding the recipients — as for a
 * direct invocation. The topic feeds a queue rather than the function, so
 * a batch of messages is one invocation, a message that failed comes back
 * on its own, and one that keeps failing is kept in a dead-letter queue.
 */
export class IngestTopic extends Construct {
  readonly topic: sns.ITopic;
  readonly queue: sqs.IQueue;
  readonly deadLetters: sqs.IQueue;
  private readonly key: kms.IKey;

  constructor(scope: Construct, id: string, props: IngestTopicProps) {
    super(scope, id);
    this.key = props.key;
    this.topic = new sns.Topic(this, 'Topic', { masterKey: props.key, enforceSSL: true });
    // SSE-SQS: SNS cannot send to a queue under the AWS managed KMS key.
    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: props.visibilityTimeout ?? Duration.minutes(3),
      // A notification is for a browser now: one a day old is better in the dead-letter queue for a look than delivered.
      retentionPeriod: Duration.days(1),
      deadLetterQueue: { queue: this.deadLetters, maxReceiveCount: INGEST_MAX_RECEIVES },
    });
    this.queue = queue;
    // Raw: the message body is the publish body itself, not SNS's JSON envelope around it.
    this.topic.addSubscription(new subscriptions.SqsSubscription(queue, { rawMessageDelivery: true }));
    props.publisher.addEventSource(new sources.SqsEventSource(queue, { batchSize: 10, reportBatchItemFailures: true }));
  }

  /** Publish to the ingest topic, with the key use SNS asks of a publisher to an encrypted topic. */
  grantPublish(grantee: iam.IGrantable): iam.Grant {
    const grant = iam.Grant.addToPrincipal({ grantee, actions: ['sns:Publish'], resourceArns: [this.topic.topicArn] });
    iam.Grant.addToPrincipal({ grantee, actions: [...TOPIC_KEY_ACTIONS], resourceArns: [this.key.keyArn] });
    return grant;
  }
}
