/**
 * The memory adapters against the port contracts. The local shape trusts them
 * as stand-ins for the AWS adapters because both pass these same suites.
 */
import { MemoryBus, MemoryNetwork } from '../../services/adapters/memory/memory-bus';
import { MemoryHistory } from '../../services/adapters/memory/memory-history';
import { MemoryOwners } from '../../services/adapters/memory/memory-owners';
import { TokenBucketLimiter } from '../../services/adapters/memory/token-bucket';
import { LeasedRateLimiter } from '../../services/shared/leased-rate-limiter';
import { describeBusContract } from './bus.contract';
import { describeHistoryContract } from './history.contract';
import { describeOwnersContract } from './owners.contract';
import { describeRateLimiterContract } from './rate-limiter.contract';

const nothingToClean = (): Promise<void> => Promise.resolve();

describeBusContract('memory', {
  ordered: true,
  create: () => {
    const network = new MemoryNetwork();
    return Promise.resolve({ bus: () => Promise.resolve(new MemoryBus(network)), cleanup: nothingToClean });
  },
});

describeOwnersContract('memory', (context) => Promise.resolve({ owners: new MemoryOwners(context.clock.now), cleanup: nothingToClean }));

describeHistoryContract('memory', (context, options) =>
  Promise.resolve({
    // The byte bound is the memory adapter's own limit, outside the contract: far out of reach here.
    history: new MemoryHistory({ maxEventsPerStream: options.maxEventsPerStream, maxBytes: 256 * 1024 * 1024, clock: context.clock.now }),
    cleanup: nothingToClean,
  }),
);

describeRateLimiterContract('memory', (context, budget) =>
  Promise.resolve({ limiter: new TokenBucketLimiter(budget, context.clock.now), cleanup: nothingToClean }),
);

// Leases pass the whole contract: every take it asserts on drains the local tokens or
// waits out a denial, and the contract's small budgets cap the chunk at one token. What
// only leases do (chunks, expiry, one lease in flight) is in leased-rate-limiter.test.ts.
describeRateLimiterContract('leased over memory', (context, budget) =>
  Promise.resolve({
    limiter: new LeasedRateLimiter({ shared: new TokenBucketLimiter(budget, context.clock.now), budget, clock: context.clock.now }),
    cleanup: nothingToClean,
  }),
);
