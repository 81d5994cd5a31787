/**
 * The IAM readers the construct tests rely on: a grant they cannot see would
 * make "and nothing else" assertions pass on a role that can do more.
 */
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { bareStack, grantsOf, managedPolicyArnsOf, statementsOf } from './infra-kit';

function setup() {
  const stack = bareStack();
  const role = new iam.Role(stack, 'Role', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    inlinePolicies: { Inline: new iam.PolicyDocument({ statements: [new iam.PolicyStatement({ actions: ['sqs:ListQueues'], resources: ['*'] })] }) },
  });
  return { stack, role };
}

describe('infra-kit IAM readers', () => {
  it("read a role's inline policies, its default policy and the customer managed policies attached either way", () => {
    // GIVEN a statement in each place a role can get one from the template
    const { stack, role } = setup();
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['sns:Publish'], resources: ['arn:aws:sns:us-east-1:123456789012:t'] }));
    role.addManagedPolicy(new iam.ManagedPolicy(stack, 'ByArn', { statements: [new iam.PolicyStatement({ actions: ['sqs:GetQueueUrl'], resources: ['*'] })] }));
    new iam.ManagedPolicy(stack, 'ByRoles', { roles: [role], statements: [new iam.PolicyStatement({ actions: ['sqs:GetQueueAttributes'], resources: ['*'] })] });
    // THEN
    const template = Template.fromStack(stack);
    expect(grantsOf(template, stack, role).map((g) => g.actions)).toEqual([['sqs:ListQueues'], ['sns:Publish'], ['sqs:GetQueueUrl'], ['sqs:GetQueueAttributes']]);
    expect(managedPolicyArnsOf(template, stack, role)).toEqual([{ Ref: expect.stringMatching(/^ByArn/) as unknown }]);
  });

  it('refuse to list the statements of a role with an AWS managed policy, whose statements are not in the template', () => {
    // GIVEN
    const { stack, role } = setup();
    role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole'));
    // THEN
    const template = Template.fromStack(stack);
    expect(() => statementsOf(template, stack, role)).toThrow(/managed policies whose statements are not in the template/);
    expect(managedPolicyArnsOf(template, stack, role)).toEqual([
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/service-role/AWSLambdaBasicExecutionRole']] },
    ]);
  });
});
