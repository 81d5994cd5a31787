import { describe, expect, it } from 'vitest';
import { fakeBrowser } from './fake-browser';
import { probeStream } from './probe';

describe('probeStream', () => {
  it('tells a 401 apart', async () => {
    const browser = fakeBrowser();
    browser.answers.push(new Response('{"error":"token_expired"}', { status: 401 }));
    await expect(probeStream(browser.env, 'https://h.example/events', false)).resolves.toEqual({ kind: 'unauthorized' });
  });

  it('reads Retry-After of a 503 and a 429', async () => {
    const browser = fakeBrowser();
    browser.answers.push(new Response('', { status: 503, headers: { 'Retry-After': '2' } }));
    browser.answers.push(new Response('', { status: 429 }));
    await expect(probeStream(browser.env, 'https://h.example/events', false)).resolves.toEqual({ kind: 'refused', status: 503, retryAfterMs: 2000 });
    await expect(probeStream(browser.env, 'https://h.example/events', false)).resolves.toEqual({ kind: 'refused', status: 429, retryAfterMs: undefined });
  });

  it('cancels the body if a server answers with a stream anyway', async () => {
    const browser = fakeBrowser();
    let cancelled = false;
    const body = new ReadableStream({ cancel: () => void (cancelled = true) });
    browser.answers.push(new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }));
    await expect(probeStream(browser.env, 'https://h.example/events', false)).resolves.toEqual({ kind: 'available' });
    expect(cancelled).toBe(true);
  });

  it('is a network failure when fetch rejects', async () => {
    const browser = fakeBrowser();
    browser.answers.push(new TypeError('Failed to fetch'));
    await expect(probeStream(browser.env, 'https://h.example/events', false)).resolves.toEqual({ kind: 'network' });
  });

  it('asks for a status check (JSON, not a stream) with the same credentials mode as the EventSource', async () => {
    const browser = fakeBrowser();
    await probeStream(browser.env, 'https://h.example/events', true);
    await probeStream(browser.env, 'https://h.example/events', false);
    expect(browser.probes.map((p) => p.init.credentials)).toEqual(['include', 'same-origin']);
    expect(browser.probes[0]?.init.headers).toEqual({ Accept: 'application/json' });
  });
});
