/**
 * Every cdk-nag AwsSolutions finding Herald accepts, each on the narrowest
 * construct that raises it and with the reason it is right here. Nothing else
 * in lib/ or bin/ acknowledges a rule. test/infra/herald-app.test.ts checks
 * that each acknowledgement still matches a real finding.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { HeraldStack } from './herald-stack';

export interface NagAcknowledgement {
  readonly scope: IConstruct;
  /** The exact rule id cdk-nag reports, `Rule[Finding]` for granular rules. */
  readonly id: string;
  readonly reason: string;
}

/** How cdk-nag spells a resource in an IAM5 finding (its flattenCfnReference): `Ref` → `<Id>`, joins concatenated. */
export function nagResource(scope: IConstruct, value: string): string {
  const visit = (node: unknown): string => {
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
    if (typeof node !== 'object' || node === null) return JSON.stringify(node);
    const fn = node as Record<string, unknown>;
    if (Array.isArray(fn['Fn::Join'])) {
      const [delimiter, items] = fn['Fn::Join'] as [string, unknown[]];
      return items.map(visit).join(delimiter);
    }
    if (Array.isArray(fn['Fn::GetAtt'])) {
      const [resource, attribute] = fn['Fn::GetAtt'] as [unknown, unknown];
      return `<${visit(resource)}.${visit(attribute)}>`;
    }
    if ('Ref' in fn) return `<${visit(fn.Ref)}>`;
    return JSON.stringify(node);
  };
  return `Resource::${visit(Stack.of(scope).resolve(value))}`;
}

export function heraldNagAcknowledgements(stack: HeraldStack): NagAcknowledgement[] {
  const { service, bus, janitor } = stack;
  const queues = nagResource(stack, bus.nodeQueuesArn);
  const acknowledgements: NagAcknowledgement[] = [
    {
      scope: stack.logBucket,
      id: 'AwsSolutions-S1',
      reason:
        'This bucket is the access-log destination (ALB access logs, VPC flow logs). Logging access to it would need yet another log bucket; ' +
        'it is private, TLS-only and written only by the log-delivery services its policy names.',
    },
    {
      scope: service.loadBalancer,
      id: 'AwsSolutions-EC23',
      reason:
        'The internet-facing load balancer is where browsers open their streams: ports 80 (redirect, or HTTP for a first try) and 443 ' +
        'are open to everyone by design. The tasks accept traffic only from this security group.',
    },
    {
      scope: service.taskRole,
      id: `AwsSolutions-IAM5[${queues}]`,
      reason:
        'Each task creates its own queue at start (`<prefix>_<task id>`), so no queue exists to be named in advance. The wildcard covers ' +
        "this deployment's prefix only, in this account and region.",
    },
    {
      scope: service.taskRole,
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'sns:Unsubscribe has no resource-level permissions (the Service Authorization Reference lists no resource type for it), so it ' +
        'must be granted on `*`; a node unsubscribes only the subscription it made for its own queue.',
    },
    {
      scope: service.executionRole,
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ecr:GetAuthorizationToken has no resource-level permissions and must be granted on `*`; the image pull itself is limited to the ' +
        "CDK assets repository, and logs and the secret to this service's own.",
    },
    {
      scope: service.service.taskDefinition,
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds only non-secret settings (topic ARN, table name, queue prefix, timings, JWKS URL, issuer, audience). ' +
        'The HS256 secret is injected from Secrets Manager through `secrets`, never as a plain variable.',
    },
    {
      scope: service.service.cluster,
      id: 'AwsSolutions-ECS4',
      reason:
        'The nodes publish the metrics that matter per service through EMF (ActiveConnections, Deliveries, SlowConsumerCuts, ' +
        'PublishToWriteMs), and ECS publishes service CPU and memory at no charge. Container Insights would add per-task metrics billed ' +
        'as custom metrics plus log ingestion; enable `containerInsightsV2` on the cluster if you want them.',
    },
    {
      scope: janitor.role,
      id: `AwsSolutions-IAM5[${queues}]`,
      reason: 'The janitor removes queues of dead nodes, made at run time under this deployment\'s prefix: the wildcard covers that prefix only.',
    },
    {
      scope: janitor.role,
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'sqs:ListQueues and sns:Unsubscribe have no resource-level permissions and must be granted on `*`. ListQueues only lists names ' +
        '(the janitor lists with its prefix, and reading, checking or deleting a queue is limited to the prefix); the janitor unsubscribes ' +
        'only subscriptions it found on this topic (ListSubscriptionsByTopic is limited to the topic) whose queue carries its tag.',
    },
  ];
  if (service.jwtSecret) {
    acknowledgements.push({
      scope: service.jwtSecret,
      id: 'AwsSolutions-SMG4',
      reason:
        'The HS256 secret is shared with your sign-in service, which signs browser tokens with it: a scheduled rotation would invalidate ' +
        'every token unless both sides reload in step. Rotate it by hand (see README, "Deploy on AWS"), or use a JWKS (`jwksUrl`), whose keys rotate by design.',
    });
  }
  return acknowledgements;
}

export function acknowledgeNagFindings(stack: HeraldStack): void {
  for (const { scope, id, reason } of heraldNagAcknowledgements(stack)) {
    Validations.of(scope).acknowledge({ id, reason });
  }
}
