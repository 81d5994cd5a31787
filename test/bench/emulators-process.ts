/**
 * The cluster shape's emulators in a process of their own (fauxqs for
 * SNS/SQS, dynalite for DynamoDB, both on 127.0.0.1), so their CPU is neither
 * the nodes' nor the bench's. Run with `node --import tsx`: dynalite's storage
 * is not bundled. Answers `sample` (its own CPU and memory) over IPC.
 */
import { startEmulators } from '../../scripts/fleet/emulators';
import { serve } from './ipc';

const emulators = await startEmulators();

serve(
  {
    sample: () => {
      const cpu = process.cpuUsage();
      return { cpuUs: cpu.user + cpu.system, rss: process.memoryUsage().rss };
    },
  },
  { snsEndpoint: emulators.snsEndpoint, dynamoEndpoint: emulators.dynamoEndpoint },
);

process.on('SIGTERM', () => {
  void emulators.stop().finally(() => process.exit(0));
});
