import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isHeraldError } from '../protocol/errors';
import { readBody } from './read-body';

const LIMIT = 1000;

interface Outcome {
  readonly body?: string;
  readonly error?: unknown;
}

let server: Server | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A real server whose one request is read with `readBody`; `send` writes the raw request. */
async function readOne(send: (socket: Socket) => void): Promise<Outcome> {
  const outcome = new Promise<Outcome>((resolve) => {
    server = createServer((req: IncomingMessage, res) => {
      readBody(req, LIMIT).then(
        (body) => {
          resolve({ body: body.toString('utf8') });
          res.end('ok');
        },
        (error: unknown) => {
          resolve({ error });
          res.destroy();
        },
      );
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const socket = connect((server!.address() as AddressInfo).port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  send(socket);
  return outcome;
}

const head = (headers: string): string => `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`;
const chunk = (data: string): string => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('readBody', () => {
  it('returns a Content-Length body', async () => {
    const outcome = await readOne((socket) => socket.write(`${head('Content-Length: 11\r\n')}hello world`));
    expect(outcome.body).toBe('hello world');
  });

  it('joins a chunked body sent in several writes', async () => {
    const outcome = await readOne((socket) => {
      socket.write(`${head('Transfer-Encoding: chunked\r\n')}${chunk('a'.repeat(300))}`);
      setTimeout(() => socket.write(`${chunk('b'.repeat(300))}0\r\n\r\n`), 20);
    });
    expect(outcome.body).toBe('a'.repeat(300) + 'b'.repeat(300));
  });

  it('accepts a body of exactly the limit', async () => {
    const outcome = await readOne((socket) => socket.write(`${head(`Content-Length: ${LIMIT}\r\n`)}${'x'.repeat(LIMIT)}`));
    expect(outcome.body).toHaveLength(LIMIT);
  });

  it('refuses a declared length over the limit before reading, with body_too_large', async () => {
    const outcome = await readOne((socket) => socket.write(head(`Content-Length: ${LIMIT + 1}\r\n`)));
    expect(isHeraldError(outcome.error) && outcome.error.code).toBe('body_too_large');
  });

  it('refuses a chunked body once it passes the limit, without waiting for its end', async () => {
    const outcome = await readOne((socket) => {
      socket.write(`${head('Transfer-Encoding: chunked\r\n')}${chunk('a'.repeat(600))}`);
      // No last chunk: the body never ends, so only the limit can settle the read.
      setTimeout(() => socket.write(chunk('b'.repeat(600))), 20);
    });
    expect(isHeraldError(outcome.error) && outcome.error.code).toBe('body_too_large');
  });

  it('rejects when the client goes away before the body ends', async () => {
    const outcome = await readOne((socket) => {
      socket.write(`${head('Content-Length: 500\r\n')}${'x'.repeat(100)}`);
      void pause(20).then(() => socket.destroy());
    });
    expect(outcome.error).toBeInstanceOf(Error);
    expect(outcome.body).toBeUndefined();
  });
});
