import { RemovalPolicy } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { HeraldTable } from '../../lib/constructs/herald-table';
import { createTableInput, TABLE } from '../../services/adapters/aws/table';
import { bareStack, grantsOf } from './infra-kit';

function setup(removalPolicy?: RemovalPolicy) {
  const stack = bareStack();
  const table = new HeraldTable(stack, 'Table', removalPolicy === undefined ? {} : { removalPolicy });
  const role = new iam.Role(stack, 'Grantee', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  return { stack, table, role, tableArn: stack.resolve(table.table.tableArn) as unknown };
}

function tableResource(template: Template): { Properties: Record<string, unknown>; DeletionPolicy?: string } {
  const tables = Object.values(template.findResources('AWS::DynamoDB::Table'));
  expect(tables).toHaveLength(1);
  return tables[0] as { Properties: Record<string, unknown>; DeletionPolicy?: string };
}

describe('HeraldTable', () => {
  it('has the key schema the adapters and emulators create (createTableInput)', () => {
    const { stack } = setup();
    const { Properties } = tableResource(Template.fromStack(stack));
    const input = createTableInput('any');
    expect(Properties.KeySchema).toEqual(input.KeySchema);
    expect(Properties.AttributeDefinitions).toEqual(input.AttributeDefinitions);
    expect(Properties.BillingMode).toBe(input.BillingMode);
  });

  it('expires items on the ttl attribute and keeps point-in-time recovery', () => {
    const { stack } = setup();
    const { Properties } = tableResource(Template.fromStack(stack));
    expect(Properties.TimeToLiveSpecification).toEqual({ AttributeName: TABLE.ttlAttribute, Enabled: true });
    expect(Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  it('is retained when it leaves the stack unless told otherwise, and has no physical name', () => {
    const retained = tableResource(Template.fromStack(setup().stack));
    expect(retained.DeletionPolicy).toBe('Retain');
    expect(retained.Properties.TableName).toBeUndefined();
    expect(tableResource(Template.fromStack(setup(RemovalPolicy.DESTROY).stack)).DeletionPolicy).toBe('Delete');
  });

  it('grants a node the item operations it sends, never DeleteItem, on this table only', () => {
    const { stack, table, role, tableArn } = setup();
    table.grantNodeRuntime(role);
    expect(grantsOf(Template.fromStack(stack), stack, role)).toEqual([
      {
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
        resource: [tableArn],
      },
    ]);
  });

  it('grants the publisher the item operations it sends, neither UpdateItem nor DeleteItem, on this table only', () => {
    const { stack, table, role, tableArn } = setup();
    table.grantPublisher(role);
    expect(grantsOf(Template.fromStack(stack), stack, role)).toEqual([
      { actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'], resource: [tableArn] },
    ]);
  });

  it('grants the janitor Query and DeleteItem on this table only', () => {
    const { stack, table, role, tableArn } = setup();
    table.grantJanitor(role);
    expect(grantsOf(Template.fromStack(stack), stack, role)).toEqual([{ actions: ['dynamodb:Query', 'dynamodb:DeleteItem'], resource: [tableArn] }]);
  });
});
