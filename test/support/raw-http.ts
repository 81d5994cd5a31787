import { request, type IncomingHttpHeaders } from 'node:http';
import { withDeadline } from '../../scripts/fleet/deadline';

export interface RawRequest {
  readonly method?: string;
  readonly path: string;
  /** Sent exactly as given: nothing is added (no Content-Type, no Authorization). */
  readonly headers?: Record<string, string>;
  /** Sent with a Content-Length. */
  readonly body?: string | Buffer;
  /** Sent one `write` each with `Transfer-Encoding: chunked` (no Content-Length). */
  readonly chunks?: readonly Buffer[];
  readonly timeoutMs?: number;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  readonly json: Record<string, unknown> | undefined;
}

/**
 * One HTTP request over `node:http` with full control of headers and framing,
 * which `fetch` does not give: it adds a Content-Type to string bodies and
 * cannot send a chunked body of a known size. Resolves when the response has
 * been read, even if the server answered before taking the whole body.
 */
export function rawRequest(baseUrl: string, options: RawRequest): Promise<RawResponse> {
  const url = new URL(options.path, baseUrl);
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(options.body));
  return withDeadline(
    new Promise<RawResponse>((resolve, reject) => {
      let answered = false;
      const req = request(url, { method: options.method ?? 'POST', headers, agent: false }, (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) });
        });
        res.on('error', reject);
      });
      // A server that refuses early may close while the body is still going out.
      req.on('error', (error) => {
        if (!answered) reject(error);
      });
      if (options.chunks) {
        for (const chunk of options.chunks) req.write(chunk);
        req.end();
      } else {
        req.end(options.body);
      }
    }),
    options.timeoutMs ?? 10_000,
    `the response to ${options.method ?? 'POST'} ${options.path}`,
  );
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
