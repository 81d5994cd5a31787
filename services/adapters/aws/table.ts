/**
 * Herald's one DynamoDB table (single-table design), defined once: the
 * adapters build their keys from it, the tests and `npm run cluster` create
 * it from `createTableInput`, and the CDK stack (lib/) declares it from the
 * same constants.
 *
 * | item            | pk                   | sk                 |
 * |-----------------|----------------------|--------------------|
 * | a user's tabs   | `user#<userId>`      | `owner`            |
 * | a node          | `nodes`              | `node#<nodeId>`    |
 * | history entry   | `hist#u#<userId>` / `hist#all` | append key (a ULID) |
 * | an event's id   | `event#<eventId>`    | `event`            |
 * | a rate budget   | `rate#<key>`         | `bucket`           |
 *
 * Every item carries `ttl` (epoch seconds) so DynamoDB deletes it eventually;
 * readers never rely on that deletion and compare their own expiry instead.
 */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** The TTL attribute, in epoch seconds. */
  ttlAttribute: 'ttl',
} as const;

/** The CreateTable input for a fresh table (emulators, `npm run cluster`); on-demand, as in the stack. */
export function createTableInput(tableName: string): {
  TableName: string;
  BillingMode: 'PAY_PER_REQUEST';
  AttributeDefinitions: Array<{ AttributeName: string; AttributeType: 'S' }>;
  KeySchema: Array<{ AttributeName: string; KeyType: 'HASH' | 'RANGE' }>;
} {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: TABLE.partitionKey, AttributeType: 'S' },
      { AttributeName: TABLE.sortKey, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
    ],
  };
}
