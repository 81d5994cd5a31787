/**
 * Bench-only wrapper: starts a node in the local shape exactly as
 * services/node/main.ts does (loadConfig → composeLocal → startHerald, all from
 * the environment), and answers the bench over IPC with what a black box
 * cannot say precisely: memory after a full GC, its own CPU time, and a CPU
 * profile of a chosen window. Run as `node --expose-gc` on the esbuild bundle,
 * so tsx's transpiler is not part of the memory baseline.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createLogger } from '../../services/shared/log';
import { loadConfig } from '../../services/node/config';
import { composeLocal } from '../../services/node/compose';
import { resolveNodeId } from '../../services/node/node-id';
import { startHerald } from '../../services/node/server';
import { serve, type LoopDelay, type NodeSample } from './ipc';

const config = loadConfig(process.env);
const log = createLogger({ level: config.logLevel });
const herald = await startHerald({ config, ports: composeLocal(config, log), log, nodeId: await resolveNodeId(process.env) });

function sample(): NodeSample {
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  const cpu = process.cpuUsage();
  return { memory: { rss, heapUsed, heapTotal, external, arrayBuffers }, cpuUs: cpu.user + cpu.system, systemCpuUs: cpu.system };
}

let profiler: Session | undefined;
// Enabled only while asked: its 1 ms timer would otherwise cost CPU in every phase.
const LOOP_DELAY_RESOLUTION_MS = 1;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });

serve(
  {
    gc: () => {
      if (!globalThis.gc) throw new Error('run node-under-test with --expose-gc');
      // Twice: the first pass can leave objects that only a second one frees (weak refs, finalizers).
      globalThis.gc();
      globalThis.gc();
      return sample();
    },
    sample: () => sample(),
    'loop-delay-start': () => {
      loopDelay.reset();
      loopDelay.enable();
      return null;
    },
    'loop-delay-stop': (): LoopDelay => {
      loopDelay.disable();
      // The histogram holds whole timer intervals; the delay is what exceeds the 1 ms period.
      const late = (ns: number): number => Math.max(0, ns / 1000 - LOOP_DELAY_RESOLUTION_MS * 1000);
      return { p50Us: late(loopDelay.percentile(50)), p99Us: late(loopDelay.percentile(99)), maxUs: late(loopDelay.max) };
    },
    'profile-start': async () => {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
      await profiler.post('Profiler.start');
      return null;
    },
    'profile-stop': async (request) => {
      if (!profiler) throw new Error('no profile running');
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      profiler = undefined;
      writeFileSync(String(request.path), JSON.stringify(profile));
      return request.path;
    },
  },
  { url: herald.url, nodeId: herald.node.nodeId },
);

// The bench stops this process by pid; no drain, the clients are going away too.
process.on('SIGTERM', () => {
  herald.server.closeAllConnections();
  process.exit(0);
});
