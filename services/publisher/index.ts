/**
 * The entry of the `@herald/publisher` package (`npm run pack`): the two ways
 * a Node service publishes, behind one `Publisher` interface, and the error
 * they refuse with. Everything here is built from these sources, never copied.
 */
export { createPublisher, PUBLISHER_ID_PATTERN, type Publisher, type PublisherOptions } from './create-publisher';
export { createHttpPublisher, HTTP_RETRY, type HttpPublisherOptions } from './http-publisher';
export type { PublishResult } from './publish';
export { DEFAULT_RETRY, type RetryPolicy } from './retrying-publish';
export type { PublishClients } from '../adapters/aws/publish-clients';
export type { PublishSettings } from '../shared/settings';
export type { Logger, LogFields, LogLevel } from '../shared/log';
export { HeraldError, isHeraldError, type ErrorCode, type HeraldErrorDetails } from '../protocol/errors';
