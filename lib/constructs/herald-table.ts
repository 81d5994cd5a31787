import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import type { EndpointAccess } from './herald-network';
import { createTableInput, TABLE } from '../../services/adapters/aws/table';

export interface HeraldTableProps {
  /**
   * What CloudFormation does with the table (history, tab owners, node
   * heartbeats) when it leaves the stack.
   * @default RemovalPolicy.RETAIN - the table and its items outlive the stack
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The item operations a node sends (services/adapters/aws/dynamo-*.ts): tab
 * claims (GetItem, PutItem) and releases (UpdateItem), heartbeats (PutItem),
 * history appends (PutItem, GetItem, BatchWriteItem) and replays (GetItem,
 * Query, BatchGetItem), owner lookups (BatchGetItem, Query) and the publish
 * budget (GetItem, PutItem). No DeleteItem: a node's items go by TTL or by the janitor.
 */
export const NODE_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:Query',
  'dynamodb:BatchGetItem',
  'dynamodb:BatchWriteItem',
] as const;

/**
 * The item operations the publisher sends (services/publisher/): the publish
 * budget (UpdateItem leases, GetItem on a denial), the history append
 * (BatchWriteItem; PutItem and GetItem for a caller-chosen id) and the owner
 * lookup: today the very operations a node sends. No DeleteItem.
 */
export const PUBLISHER_TABLE_ACTIONS = NODE_TABLE_ACTIONS;

/** The janitor reads a node's items and removes those of dead nodes, nothing else. */
export const JANITOR_TABLE_ACTIONS = ['dynamodb:Query', 'dynamodb:DeleteItem'] as const;

/** The key schema the adapters and emulators use, read from `createTableInput` so the two cannot drift. */
function keySchema(): { partitionKey: dynamodb.Attribute; sortKey: dynamodb.Attribute } {
  const input = createTableInput('schema');
  const attribute = (keyType: 'HASH' | 'RANGE'): dynamodb.Attribute => {
    const name = input.KeySchema.find((key) => key.KeyType === keyType)?.AttributeName;
    const definition = input.AttributeDefinitions.find((attr) => attr.AttributeName === name);
    if (name === undefined || definition?.AttributeType !== 'S') throw new Error(`createTableInput has no string ${keyType} key`);
    return { name, type: dynamodb.AttributeType.STRING };
  };
  return { partitionKey: attribute('HASH'), sortKey: attribute('RANGE') };
}

/**
 * Herald's one DynamoDB table (services/adapters/aws/table.ts): on-demand, TTL
 * on `ttl`, point-in-time recovery, no physical name so two stacks can share an
 * account.
 */
export class HeraldTable extends Construct {
  readonly table: dynamodb.ITable;

  constructor(scope: Construct, id: string, props: HeraldTableProps = {}) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      ...keySchema(),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TABLE.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** The item operations a node sends, on this table only. */
  grantNodeRuntime(grantee: iam.IGrantable): iam.Grant {
    return this.table.grant(grantee, ...NODE_TABLE_ACTIONS);
  }

  /** What `grantNodeRuntime` grants (the table has no index), for the DynamoDB endpoint's policy. */
  nodeRuntimeAccess(): EndpointAccess[] {
    return [{ actions: [...NODE_TABLE_ACTIONS], resources: [this.table.tableArn] }];
  }

  /** The item operations the publisher sends, on this table only. */
  grantPublisher(grantee: iam.IGrantable): iam.Grant {
    return this.table.grant(grantee, ...PUBLISHER_TABLE_ACTIONS);
  }

  /** Query and DeleteItem on this table only: what the janitor needs. */
  grantJanitor(grantee: iam.IGrantable): iam.Grant {
    return this.table.grant(grantee, ...JANITOR_TABLE_ACTIONS);
  }
}
