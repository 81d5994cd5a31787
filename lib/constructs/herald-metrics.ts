import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { EMF_NAMESPACE } from '../../services/node/emf';

/**
 * The metrics the nodes emit as EMF log lines every 60 s (services/node/emf.ts):
 * namespace `Herald`, one dimension `ServiceName`. Each node writes one value
 * per minute, so `Average` over a minute is per task and `Sum` is the fleet.
 */
export const NODE_METRIC_NAMES = ['ActiveConnections', 'Deliveries', 'SlowConsumerCuts', 'PublishToWriteMs'] as const;
export type NodeMetricName = (typeof NODE_METRIC_NAMES)[number];

export class HeraldMetrics {
  constructor(
    /** The value of the `ServiceName` dimension: the nodes' `HERALD_SERVICE_NAME`. */
    readonly serviceName: string,
  ) {}

  metric(metricName: NodeMetricName, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: EMF_NAMESPACE,
      metricName,
      dimensionsMap: { ServiceName: this.serviceName },
      period: Duration.minutes(1),
      ...options,
    });
  }

  /** Open streams per task (Average) — what the service scales on. */
  activeConnectionsPerTask(): cloudwatch.Metric {
    return this.metric('ActiveConnections', { statistic: cloudwatch.Stats.AVERAGE, label: 'streams per task' });
  }

  activeConnectionsTotal(): cloudwatch.Metric {
    return this.metric('ActiveConnections', { statistic: cloudwatch.Stats.SUM, label: 'streams, all tasks' });
  }

  deliveries(): cloudwatch.Metric {
    return this.metric('Deliveries', { statistic: cloudwatch.Stats.SUM, label: 'events written to streams' });
  }

  slowConsumerCuts(): cloudwatch.Metric {
    return this.metric('SlowConsumerCuts', { statistic: cloudwatch.Stats.SUM, label: 'streams cut for not reading' });
  }

  /** Each node reports its own p99 of publish→write per minute; the worst node is the one to look at. */
  publishToWriteP99(): cloudwatch.Metric {
    return this.metric('PublishToWriteMs', { statistic: cloudwatch.Stats.MAXIMUM, label: 'publish→write p99, worst node (ms)' });
  }
}
