import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface LogBucketProps {
  /**
   * How long access logs and flow logs are kept.
   * @default Duration.days(90)
   */
  readonly retention?: Duration;
}

/**
 * Where the ALB writes its access logs and the VPC its flow logs: private,
 * TLS only, encrypted with S3-managed keys (the only encryption ALB access
 * logs can be delivered into), expired after `retention`. Kept when the stack
 * goes, as audit records should be.
 */
export class LogBucket extends Construct {
  readonly bucket: s3.IBucket;

  constructor(scope: Construct, id: string, props: LogBucketProps = {}) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: props.retention ?? Duration.days(90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
