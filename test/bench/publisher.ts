/**
 * `POST /publish` over a few keep-alive connections (plain `node:http`: lighter
 * than fetch, and the bench's own CPU competes with the node for two cores).
 */
import { Agent, request } from 'node:http';

export interface PublishOutcome {
  readonly status: number;
  readonly body: string;
}

/** POSTs to any path of one server over a few keep-alive connections. */
export class KeepAlivePoster {
  private readonly agent: Agent;
  private readonly hostname: string;
  private readonly port: number;

  constructor(baseUrl: string, connections: number) {
    const url = new URL(baseUrl);
    this.hostname = url.hostname;
    this.port = Number(url.port || 80);
    this.agent = new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  }

  /** Resolves with any status; rejects only on a transport error. */
  post(path: string, body: string, headers: Readonly<Record<string, string>>): Promise<PublishOutcome> {
    return new Promise<PublishOutcome>((resolve, reject) => {
      const req = request(
        { hostname: this.hostname, port: this.port, path, method: 'POST', agent: this.agent, headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('publish timed out after 30 s')));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** A Herald node's `POST /publish`. */
export class HttpPublisher {
  private readonly poster: KeepAlivePoster;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(baseUrl: string, token: string, connections: number) {
    this.poster = new KeepAlivePoster(baseUrl, connections);
    this.headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  }

  /** Resolves with any status; rejects only on a transport error. */
  post(json: string): Promise<PublishOutcome> {
    return this.poster.post('/publish', json, this.headers);
  }

  close(): void {
    this.poster.close();
  }
}

/** GET a text resource, e.g. `/metrics`. */
export function getText(url: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The unlabelled samples of a Prometheus text exposition, plus labelled ones as `name{label="v"}`. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}
