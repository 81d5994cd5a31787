import { ErrorReply } from 'redis';
import { HeraldError } from '../../protocol/errors';
import { unavailable } from '../../protocol/faults';

/**
 * Error replies that a retry may outlive: a server loading its data, busy with
 * a script, or a cluster moving slots or electing a master.
 */
const TRANSIENT_REPLIES = ['LOADING', 'BUSY', 'TRYAGAIN', 'CLUSTERDOWN', 'MASTERDOWN', 'READONLY', 'NOREPLICAS', 'OOM'];

/**
 * Turns a client failure into what the ports promise. Anything that is not an
 * error reply is the connection's (refused, reset, offline, a command timeout,
 * a client already closed) and becomes `unavailable`; so do the transient
 * replies above. Any other reply (WRONGTYPE, a script error, CROSSSLOT) is a
 * bug or a misconfiguration: a plain Error, which retrying cannot fix. Both
 * keep the client's error as `cause` for the logs.
 */
export function redisFault(error: unknown, operation: string): Error {
  if (error instanceof HeraldError) return error;
  if (error instanceof ErrorReply) {
    const code = error.message.split(' ', 1)[0] ?? '';
    if (TRANSIENT_REPLIES.includes(code)) return unavailable(`redis ${operation} failed (${code}); retry`, error);
    return new Error(`redis ${operation} failed: ${error.message}`, { cause: error });
  }
  return unavailable(`redis ${operation} failed; retry`, error);
}

export function isNoScript(error: unknown): boolean {
  return error instanceof ErrorReply && error.message.startsWith('NOSCRIPT');
}
