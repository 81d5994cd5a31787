import { describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';

const MULTI = { HERALD_TAB_POLICY: 'multi', HERALD_MAX_TABS: '2' };

async function publish(node: TestNode, userId: string): Promise<string> {
  const response = await node.publish({ to: { users: [userId] }, event: 'message', data: {} });
  expect(response.status).toBe(202);
  return response.body.id as string;
}

async function tab(node: TestNode, label: string, userId = 'alice'): Promise<SseStream> {
  const stream = await openStream(node.url, { token: await node.token(userId), label });
  expect(stream.status).toBe(200);
  const ready = JSON.parse((await stream.next('ready')).data) as { policy: string };
  expect(ready.policy).toBe('multi');
  return stream;
}

describe('multi-tab policy', () => {
  it('delivers each event to every open tab of the user, once', async () => {
    const node = await startTestNode({ env: MULTI });
    const tab1 = await tab(node, 'tab 1');
    const tab2 = await tab(node, 'tab 2');

    const first = await publish(node, 'alice');
    const second = await publish(node, 'alice');
    for (const t of [tab1, tab2]) {
      await t.waitFor((e) => e.id === second, `the second event on ${t.label}`);
      expect(t.notifications().map((e) => e.id)).toEqual([first, second]);
      expect(t.names()).not.toContain('replaced');
    }
  });

  it('refuses a tab beyond HERALD_MAX_TABS with 429 too_many_tabs and Retry-After, leaving the others open', async () => {
    const node = await startTestNode({ env: MULTI });
    const tab1 = await tab(node, 'tab 1');
    const tab2 = await tab(node, 'tab 2');

    const third = await openStream(node.url, { token: await node.token('alice'), label: 'tab 3' });
    expect(third.status).toBe(429);
    expect(Number(third.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(third.body)).toMatchObject({ error: 'too_many_tabs' });

    // Another user is not affected by alice's tabs.
    await tab(node, 'bob', 'bob');
    const sentinel = await publish(node, 'alice');
    for (const t of [tab1, tab2]) await t.waitFor((e) => e.id === sentinel, `the sentinel on ${t.label}`);
  });

  it('accepts a new tab once one of the user\'s tabs has closed', async () => {
    const node = await startTestNode({ env: MULTI });
    const tab1 = await tab(node, 'tab 1');
    const tab2 = await tab(node, 'tab 2');
    expect((await openStream(node.url, { token: await node.token('alice') })).status).toBe(429);

    tab1.close();
    await eventually(async () => (await node.metric('herald_connections')) === 1, 3000, 'the node to see tab 1 close');
    const tab3 = await tab(node, 'tab 3');

    const sentinel = await publish(node, 'alice');
    for (const t of [tab2, tab3]) await t.waitFor((e) => e.id === sentinel, `the sentinel on ${t.label}`);
  });
});
