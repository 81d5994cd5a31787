import { Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { LogBucket } from '../../lib/constructs/log-bucket';
import { bareStack, once, resolved } from './infra-kit';

interface BucketResource {
  Properties: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}

function setup(retention?: Duration) {
  const stack = bareStack();
  const logs = new LogBucket(stack, 'Logs', retention === undefined ? {} : { retention });
  return { stack, logs, template: Template.fromStack(stack) };
}

/** The default bucket, synthesized once for the tests that only read it. */
const defaults = once(() => setup());

function bucketResource(template: Template): BucketResource {
  const buckets = Object.values(template.findResources('AWS::S3::Bucket'));
  expect(buckets).toHaveLength(1);
  return buckets[0] as BucketResource;
}

describe('LogBucket', () => {
  it('encrypts with S3-managed keys, the only encryption ALB access logs can be delivered into', () => {
    const { Properties } = bucketResource(defaults().template);
    expect(Properties.BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] });
  });

  it('blocks every kind of public access and disables ACLs, the bucket owner owning every object', () => {
    const { Properties } = bucketResource(defaults().template);
    expect(Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(Properties.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
  });

  it('has a policy that denies every request not made over TLS, on the bucket and its objects, and allows nothing', () => {
    const { stack, logs, template } = defaults();
    const policies = Object.values(template.findResources('AWS::S3::BucketPolicy')) as {
      Properties: { Bucket: unknown; PolicyDocument: { Statement: unknown[] } };
    }[];
    expect(policies).toHaveLength(1);
    const bucketArn = resolved(stack, logs.bucket.bucketArn);
    expect(policies[0]?.Properties.Bucket).toEqual(resolved(stack, logs.bucket.bucketName));
    expect(policies[0]?.Properties.PolicyDocument.Statement).toEqual([
      {
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: 's3:*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        Resource: [bucketArn, { 'Fn::Join': ['', [bucketArn, '/*']] }],
      },
    ]);
  });

  it('expires logs after 90 days by default, and after the retention given', () => {
    expect(bucketResource(defaults().template).Properties.LifecycleConfiguration).toEqual({ Rules: [{ ExpirationInDays: 90, Status: 'Enabled' }] });
    expect(bucketResource(setup(Duration.days(14)).template).Properties.LifecycleConfiguration).toEqual({
      Rules: [{ ExpirationInDays: 14, Status: 'Enabled' }],
    });
  });

  it('is kept when it leaves the stack, objects and all, and has no physical name', () => {
    const { template } = defaults();
    const bucket = bucketResource(template);
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(bucket.UpdateReplacePolicy).toBe('Retain');
    expect(bucket.Properties.BucketName).toBeUndefined();
    // No auto-delete custom resource that would empty it on stack deletion.
    expect(template.findResources('Custom::S3AutoDeleteObjects')).toEqual({});
    expect(template.findResources('AWS::Lambda::Function')).toEqual({});
  });
});
