import { describe, expect, it } from 'vitest';
import { QUEUE_PREFIX_PATTERN, nodeIdOfQueueName, nodeQueueName, nodeQueueNamePrefix } from './bus-naming';

describe('node queue names', () => {
  it('are <prefix>_<nodeId>, at most 80 characters for the longest prefix and node id', () => {
    expect(nodeQueueName('Herald', 'n-1')).toBe('Herald_n-1');
    expect(nodeQueueNamePrefix('Herald')).toBe('Herald_');
    expect(nodeQueueName('p'.repeat(39), 'n'.repeat(40))).toHaveLength(80);
  });

  it('give back their node id (what follows the first _), and nothing for another deployment or a non-node', () => {
    expect(nodeIdOfQueueName('Herald', 'Herald_n_1')).toBe('n_1');
    expect(nodeIdOfQueueName('Herald', 'Herald-prod_n-1')).toBeUndefined();
    expect(nodeIdOfQueueName('Herald', 'Herald_all')).toBeUndefined();
    expect(nodeIdOfQueueName('Herald', `Herald_${'x'.repeat(41)}`)).toBeUndefined();
  });

  it('take a prefix of 1-39 of A-Z a-z 0-9 - (no _)', () => {
    for (const prefix of ['H', 'Herald-prod', 'p'.repeat(39)]) expect(QUEUE_PREFIX_PATTERN.test(prefix)).toBe(true);
    for (const prefix of ['', 'Herald_prod', 'p'.repeat(40), 'Herald prod']) expect(QUEUE_PREFIX_PATTERN.test(prefix)).toBe(false);
  });
});
