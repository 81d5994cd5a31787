import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/constructs/herald-function';
import { REGION, tempDir } from './infra-kit';

const ENTRIES = ['services/publisher/lambda.ts', 'services/janitor/lambda.ts'];

/** A proxy that accepts connections and counts them: nothing offline should reach it. */
async function countingProxy(): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: projectPath('.'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('npm run synth', () => {
  it('synthesizes the app offline with telemetry and notices off, no credentials, and no cdk-nag finding', async () => {
    // GIVEN no AWS credentials, no instance metadata, and a proxy that would see any outbound call
    const outdir = tempDir('synth');
    const proxy = await countingProxy();
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_') && !name.startsWith('CDK_')));
    Object.assign(env, { AWS_EC2_METADATA_DISABLED: 'true', HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NO_PROXY: '' });
    // The Lambda entries are written in parallel with this stack; until both exist, the same app runs with stand-ins.
    const missing = ENTRIES.filter((entry) => !existsSync(projectPath(entry)));
    const app = missing.length === 0 ? [] : ['--app', 'npx tsx test/infra/fixtures/app-with-fixture-entries.ts'];
    // WHEN
    const { code, output } = await run('npm', ['run', '--silent', 'synth', '--', '-o', outdir, ...app], { ...env, AWS_REGION: REGION });
    await proxy.close();
    // THEN
    expect(code, output).toBe(0);
    expect(output).not.toMatch(/telemetry is enabled/i);
    expect(proxy.connections()).toBe(0);
    const template = JSON.parse(readFileSync(join(outdir, 'Herald.template.json'), 'utf8')) as {
      Resources: Record<string, { Metadata?: { cdk_nag?: { rules_to_suppress: { id: string; reason: string }[] } } }>;
    };
    expect(Object.keys(template.Resources).length).toBeGreaterThan(50);
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: { conclusion: string }[] };
    expect(report.pluginReports.filter((r) => r.conclusion !== 'success')).toEqual([]);
    // cdk-nag ran: the acknowledgements it honoured are recorded, with their reasons, on the resources they cover.
    const acknowledged = Object.values(template.Resources)
      .flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [])
      .filter((a) => a.id.startsWith('AwsSolutions-'));
    expect(new Set(acknowledged.map((a) => a.id.replace(/\[.*$/, '')))).toEqual(
      new Set(['AwsSolutions-S1', 'AwsSolutions-EC23', 'AwsSolutions-IAM5', 'AwsSolutions-ECS2', 'AwsSolutions-ECS4', 'AwsSolutions-SMG4']),
    );
    // The Lambda code was bundled locally (esbuild, no Docker) into the assembly.
    const manifest = readFileSync(join(outdir, 'Herald.assets.json'), 'utf8');
    expect(manifest).toContain('"packaging": "zip"');
    expect(manifest).toContain('"platform": "linux/arm64"');
  });
});
