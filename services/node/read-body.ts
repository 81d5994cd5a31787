import type { IncomingMessage } from 'node:http';
import { HeraldError } from '../protocol/errors';

/**
 * Reads a request body straight from Node's stream, refusing it as soon as it
 * passes `maxBytes` (declared or actually sent). Hono's `c.req.text()` would
 * build a web `Request`, a `ReadableStream` and an `AbortSignal` first: about
 * 64 KB of garbage per publish in the benchmark, whose collections showed up as
 * millisecond pauses in every stream's latency. Plain listeners rather than
 * `for await`: the stream's async iterator (a generator, `eos` and a promise
 * per chunk) was 3–4 % of the node's time at one notification per POST.
 *
 * A body over the limit is refused as soon as it passes it, and the rest is
 * left flowing to no listener: Node drops it while the 413 goes out on the
 * same socket, as it did after the iterator's early return (which destroys
 * the request but detaches its socket first). A request that closes before
 * its end rejects, as the iterator did.
 */
export function readBody(incoming: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = (): HeraldError => new HeraldError('body_too_large', `the request body is over ${maxBytes} bytes`);
  const declared = Number(incoming.headers['content-length']);
  if (declared > maxBytes) return Promise.reject(tooLarge());
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const onData = (part: Buffer): void => {
      size += part.length;
      if (size > maxBytes) {
        settle();
        reject(tooLarge());
        return;
      }
      chunks.push(part);
    };
    const onEnd = (): void => {
      settle();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      settle();
      reject(error);
    };
    const onClose = (): void => {
      settle();
      reject(Object.assign(new Error('the request closed before its body ended'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    incoming.on('data', onData);
    incoming.once('end', onEnd);
    incoming.once('error', onError);
    incoming.once('close', onClose);
  });
}
