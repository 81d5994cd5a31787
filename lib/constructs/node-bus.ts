import { ArnFormat, Duration, Lazy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { EndpointAccess } from './herald-network';
import { NODE_QUEUE_SEPARATOR, QUEUE_PREFIX_PATTERN } from '../../services/adapters/aws/bus-naming';

export interface NodeBusProps {
  /**
   * The name every node queue starts with: queues are `<queuePrefix>_<nodeId>`,
   * made by the nodes at run time. The only physical name in Herald, because IAM
   * must name the queues before they exist. Unique per deployment in an account
   * and region, or one stack's janitor would reap the other's queues.
   */
  readonly queuePrefix: string;
}

/**
 * What a node does to its own queue at run time (services/adapters/aws/node-queue.ts,
 * sns-sqs-bus.ts). Its DeleteMessageBatch calls are authorized as `sqs:DeleteMessage`:
 * IAM has no batch actions for SQS. No ChangeMessageVisibility: a message the
 * node could not handle comes back when its visibility timeout runs out.
 */
export const NODE_QUEUE_ACTIONS = [
  'sqs:CreateQueue',
  'sqs:GetQueueUrl',
  'sqs:GetQueueAttributes',
  'sqs:SetQueueAttributes',
  'sqs:TagQueue',
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:DeleteQueue',
] as const;

/**
 * What the janitor does to a queue of a dead node: read its age and ARN, check
 * the tags that say it is this deployment's, confirm a queue is gone, delete it.
 */
export const JANITOR_QUEUE_ACTIONS = ['sqs:GetQueueAttributes', 'sqs:ListQueueTags', 'sqs:GetQueueUrl', 'sqs:DeleteQueue'] as const;

/** What SNS asks of a publisher to a topic encrypted with a customer managed key. */
export const TOPIC_KEY_ACTIONS = ['kms:GenerateDataKey', 'kms:Decrypt'] as const;

/**
 * The bus between publishers and nodes (docs/architecture.md, "Shapes",
 * AWS): an SNS topic encrypted with its own KMS key that refuses
 * publishing without TLS, and publishing by any principal but the roles
 * granted it here. The per-node SQS queues are not here: autoscaled tasks
 * make their own, so this construct grants rights over queue *names*.
 */
export class NodeBus extends Construct {
  readonly topic: sns.ITopic;
  readonly key: kms.IKey;
  readonly queuePrefix: string;
  /** Every role that may publish on the topic; the topic policy denies everyone else. */
  private readonly publisherArns: string[] = [];

  constructor(scope: Construct, id: string, props: NodeBusProps) {
    super(scope, id);
    if (!Token.isUnresolved(props.queuePrefix) && !QUEUE_PREFIX_PATTERN.test(props.queuePrefix)) {
      // SQS names are at most 80 characters; the node id takes up to 40 of them, and `_` separates the two.
      throw new Error(`queuePrefix "${props.queuePrefix}" must be 1-39 characters of A-Z a-z 0-9 - (no "_")`);
    }
    this.queuePrefix = props.queuePrefix;
    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts Herald notifications at rest in SNS',
      enableKeyRotation: true,
      pendingWindow: Duration.days(7),
    });
    this.topic = new sns.Topic(this, 'Topic', { masterKey: this.key, enforceSSL: true });
    // The nodes obey what comes on the bus: a `drain` stops a node, a `replace` closes a tab, a
    // plain envelope reaches every stream without history. An IAM grant to anyone else in the
    // account (or a policy that allows the topic broadly) must not let them send one.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'HeraldRolesOnly',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': Lazy.list({ produce: () => this.publisherArns }) } },
      }),
    );
    this.node.addValidation({
      validate: () => (this.publisherArns.length === 0 ? ['no role may publish on the bus: grant grantPublish or grantNodeRuntime to the nodes and the publisher'] : []),
    });
  }

  /**
   * `arn:<partition>:sqs:<region>:<account>:<prefix>_*`: every node queue of this
   * deployment, and no other deployment's (no prefix contains `_`, so `Herald_*`
   * never matches `Herald-prod_…`).
   */
  get nodeQueuesArn(): string {
    return Stack.of(this).formatArn({ service: 'sqs', resource: `${this.queueNamePrefix}*`, arnFormat: ArnFormat.NO_RESOURCE_NAME });
  }

  /** What every node queue name of this deployment starts with: `<prefix>_`. */
  get queueNamePrefix(): string {
    return `${this.queuePrefix}${NODE_QUEUE_SEPARATOR}`;
  }

  /**
   * What `sns:Unsubscribe` may be granted on. The Service Authorization
   * Reference lists no resource type for it (unlike Subscribe or Publish), so a
   * statement naming the topic's subscriptions (`<topicArn>:*`) would never
   * match and every unsubscribe would be denied: subscriptions of stopped nodes
   * would pile up towards the 200 filter policies a topic allows.
   */
  static readonly unsubscribeResource = '*';

  /** Publish to the topic, with the key use SNS needs for it; `grantee` must be a role, which the topic policy then lets through. */
  grantPublish(grantee: iam.IGrantable): iam.Grant {
    this.allowPublishers([roleArnOf(grantee)]);
    const grant = iam.Grant.addToPrincipal({ grantee, actions: ['sns:Publish'], resourceArns: [this.topic.topicArn] });
    this.grantKeyUse(grantee);
    return grant;
  }

  /**
   * Lets roles outside this app (a service using the publisher library) past
   * the topic policy. They still need `sns:Publish` on the topic and the key
   * use in their own policies.
   */
  allowPublishers(roleArns: readonly string[]): void {
    for (const arn of roleArns) if (!this.publisherArns.includes(arn)) this.publisherArns.push(arn);
  }

  /**
   * Everything a node does on the bus: make, read and delete its own queue
   * (named with the prefix), subscribe it to the topic and unsubscribe it, and
   * publish (replace messages go to the node that held the old tab), with the
   * key use SNS asks of a publisher.
   */
  nodeRuntimeAccess(): EndpointAccess[] {
    return [
      { actions: [...NODE_QUEUE_ACTIONS], resources: [this.nodeQueuesArn] },
      { actions: ['sns:Subscribe'], resources: [this.topic.topicArn] },
      { actions: ['sns:Unsubscribe'], resources: [NodeBus.unsubscribeResource] },
      { actions: ['sns:Publish'], resources: [this.topic.topicArn] },
      { actions: [...TOPIC_KEY_ACTIONS], resources: [this.key.keyArn] },
    ];
  }

  /** `nodeRuntimeAccess`, granted. */
  grantNodeRuntime(grantee: iam.IGrantable): void {
    this.allowPublishers([roleArnOf(grantee)]);
    for (const { actions, resources } of this.nodeRuntimeAccess()) iam.Grant.addToPrincipal({ grantee, actions: [...actions], resourceArns: [...resources] });
  }

  /**
   * What the janitor needs to find and remove the queues and subscriptions of
   * crashed nodes (services/janitor/). `sqs:ListQueues` has no resource-level
   * permissions, so it is granted on `*`; the janitor lists by prefix itself.
   */
  grantJanitor(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: ['sqs:ListQueues'], resourceArns: ['*'] });
    iam.Grant.addToPrincipal({ grantee, actions: [...JANITOR_QUEUE_ACTIONS], resourceArns: [this.nodeQueuesArn] });
    iam.Grant.addToPrincipal({ grantee, actions: ['sns:ListSubscriptionsByTopic'], resourceArns: [this.topic.topicArn] });
    iam.Grant.addToPrincipal({ grantee, actions: ['sns:Unsubscribe'], resourceArns: [NodeBus.unsubscribeResource] });
  }

  private grantKeyUse(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: [...TOPIC_KEY_ACTIONS], resourceArns: [this.key.keyArn] });
  }
}

/** The ARN `aws:PrincipalArn` has for every session of the grantee: a role's own. */
function roleArnOf(grantee: iam.IGrantable): string {
  const principal = grantee.grantPrincipal;
  if (!('roleArn' in principal)) throw new Error('only a role may publish on the Herald bus');
  return (principal as iam.IRole).roleArn;
}
