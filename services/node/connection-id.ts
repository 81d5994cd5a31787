import { randomFillSync } from 'node:crypto';

const ID_BYTES = 9;
/** Ids drawn per refill: one call into the CSPRNG for 512 streams instead of one each. */
const POOL_IDS = 512;

/**
 * Random stream ids (12 base64url characters, 72 bits), drawn from a pool
 * refilled from the CSPRNG: `randomBytes` per stream cost more per accepted
 * stream than the hub and the claim together, being a call into C++ each time.
 * Ids are not secrets (a stream is reached only through its owner's token)
 * but must not collide or be guessed to be chosen, which 72 random bits give.
 */
export class ConnectionIds {
  private readonly pool = Buffer.allocUnsafeSlow(ID_BYTES * POOL_IDS);
  private offset = this.pool.length;

  next(): string {
    if (this.offset === this.pool.length) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const id = this.pool.toString('base64url', this.offset, this.offset + ID_BYTES);
    this.offset += ID_BYTES;
    return id;
  }
}
