import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeraldError } from '../protocol/errors';
import { createLogger, isLogLevel, silentLogger, type LoggerOptions, type LogLevel } from './log';

const NOW = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
const TS = '2025-01-02T03:04:05.678Z';

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function capture(options: Omit<LoggerOptions, 'sink'> = {}): { lines: string[]; records: () => unknown[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const log = createLogger({ ...options, sink: (line) => lines.push(line) });
  return { lines, log, records: () => lines.map((line) => JSON.parse(line) as unknown) };
}

describe('createLogger', () => {
  it('writes one JSON line with ts, level, event, then the fields', () => {
    const { lines, log } = capture();
    log.info('connection.opened', { connectionId: 'c1', displaced: 0 });
    expect(lines).toEqual([`{"ts":"${TS}","level":"info","event":"connection.opened","connectionId":"c1","displaced":0}`]);
  });

  it('keeps each record on one line even when a field holds line breaks', () => {
    const { lines, records, log } = capture();
    log.warn('odd.input', { value: 'a\nb\r\nc' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\r\n]/);
    expect(records()).toEqual([{ ts: TS, level: 'warn', event: 'odd.input', value: 'a\nb\r\nc' }]);
  });

  it('writes to stdout by default, one line per record', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    createLogger().info('herald.started');
    expect(write.mock.calls).toEqual([[`{"ts":"${TS}","level":"info","event":"herald.started"}\n`]]);
  });

  describe('level threshold', () => {
    const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

    it.each<[LogLevel, LogLevel[]]>([
      ['debug', ['debug', 'info', 'warn', 'error']],
      ['info', ['info', 'warn', 'error']],
      ['warn', ['warn', 'error']],
      ['error', ['error']],
    ])('at %s writes only %j', (level, written) => {
      const { records, log } = capture({ level });
      for (const l of LEVELS) log[l](`at.${l}`);
      expect(records().map((r) => (r as { level: string }).level)).toEqual(written);
      expect(LEVELS.filter((l) => log.enabled(l))).toEqual(written);
    });

    it('defaults to info', () => {
      const { records, log } = capture();
      log.debug('hidden');
      log.info('shown');
      expect(records()).toEqual([{ ts: TS, level: 'info', event: 'shown' }]);
      expect([log.enabled('debug'), log.enabled('info')]).toEqual([false, true]);
    });
  });

  describe('error fields', () => {
    it('serializes an error with name, message, code, stack and its cause chain', () => {
      const { records, log } = capture();
      const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED' });
      const wrapped = new HeraldError('unavailable', 'the table is unavailable', { cause: root });
      log.error('history.failed', { error: wrapped, userCount: 2 });
      expect(records()).toEqual([
        {
          ts: TS,
          level: 'error',
          event: 'history.failed',
          error: {
            name: 'HeraldError',
            message: 'the table is unavailable',
            code: 'unavailable',
            stack: wrapped.stack,
            cause: { name: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:8000', code: 'ECONNREFUSED', stack: root.stack },
          },
          userCount: 2,
        },
      ]);
    });

    it('follows the cause chain three levels deep, then stops', () => {
      const { records, log } = capture();
      let error = new Error('e0');
      for (let i = 1; i <= 5; i++) error = new Error(`e${i}`, { cause: error });
      log.error('deep', { error });
      const messages: string[] = [];
      let node = (records()[0] as { error?: { message: string; cause?: unknown } }).error;
      while (node !== undefined) {
        messages.push(node.message);
        node = node.cause as typeof node;
      }
      expect(messages).toEqual(['e5', 'e4', 'e3', 'e2']);
    });

    it('does not loop on a cause cycle', () => {
      const { records, log } = capture();
      const a = new Error('a');
      const b = new Error('b', { cause: a });
      (a as { cause?: unknown }).cause = b;
      log.error('cycle', { error: a });
      expect(records()).toHaveLength(1);
    });

    it('keeps a cause that is not an Error as it is', () => {
      const { records, log } = capture();
      log.error('odd', { error: new Error('outer', { cause: { status: 503 } }) });
      expect((records()[0] as { error: { cause: unknown } }).error.cause).toEqual({ status: 503 });
    });

    it('passes a non-Error error field through unchanged', () => {
      const { records, log } = capture();
      log.warn('odd', { error: 'a string' });
      expect(records()).toEqual([{ ts: TS, level: 'warn', event: 'odd', error: 'a string' }]);
    });

    it('describes an Error under any key, not only `error`', () => {
      const { records, log } = capture();
      log.warn('other', { reason: new Error('described') });
      const [record] = records() as Array<{ reason: { name: string; message: string } }>;
      expect(record?.reason.name).toBe('Error');
      expect(record?.reason.message).toBe('described');
    });

    it('never lets a field overwrite ts, level or event', () => {
      const { records, log } = capture();
      log.child({ event: 'spoofed' }).info('real', { level: 'error', ts: 'then' });
      expect(records()).toEqual([{ ts: TS, level: 'info', event: 'real' }]);
    });

    it('does not throw on a field JSON cannot hold: BigInt becomes a string, a cycle is reported', () => {
      const { records, log } = capture();
      const cycle: Record<string, unknown> = {};
      cycle.self = cycle;
      log.info('big', { n: 10n });
      log.info('loop', { cycle });
      expect(records()).toEqual([
        { ts: TS, level: 'info', event: 'big', n: '10' },
        { ts: TS, level: 'info', event: 'loop', logError: 'fields could not be serialized' },
      ]);
    });
  });

  describe('child', () => {
    it('adds its fields to every record after ts, level and event', () => {
      const { lines, log } = capture();
      log.child({ nodeId: 'n1' }).info('bus.started', { queue: 'q' });
      expect(lines).toEqual([`{"ts":"${TS}","level":"info","event":"bus.started","nodeId":"n1","queue":"q"}`]);
    });

    it('merges the fields of nested children, the inner one winning', () => {
      const { records, log } = capture();
      log.child({ nodeId: 'n1', component: 'node' }).child({ component: 'bus', connectionId: 'c1' }).info('x');
      expect(records()).toEqual([{ ts: TS, level: 'info', event: 'x', nodeId: 'n1', component: 'bus', connectionId: 'c1' }]);
    });

    it('lets the call fields win over the child fields', () => {
      const { records, log } = capture();
      log.child({ connectionId: 'c1' }).info('x', { connectionId: 'c2' });
      expect(records()).toEqual([{ ts: TS, level: 'info', event: 'x', connectionId: 'c2' }]);
    });

    it('leaves the parent unchanged', () => {
      const { records, log } = capture();
      log.child({ nodeId: 'n1' });
      log.info('parent');
      expect(records()).toEqual([{ ts: TS, level: 'info', event: 'parent' }]);
    });

    it('keeps the parent’s level and sink', () => {
      const { records, log } = capture({ level: 'warn' });
      const child = log.child({ nodeId: 'n1' });
      child.info('hidden');
      child.warn('shown');
      expect(records()).toEqual([{ ts: TS, level: 'warn', event: 'shown', nodeId: 'n1' }]);
      expect(child.enabled('info')).toBe(false);
    });

    it('keeps base fields given at creation', () => {
      const { records, log } = capture({ base: { service: 'herald' } });
      log.child({ nodeId: 'n1' }).info('x');
      expect(records()).toEqual([{ ts: TS, level: 'info', event: 'x', service: 'herald', nodeId: 'n1' }]);
    });
  });
});

describe('isLogLevel', () => {
  it.each(['debug', 'info', 'warn', 'error'])('accepts %s', (level) => {
    expect(isLogLevel(level)).toBe(true);
  });

  it.each(['', 'INFO', 'trace', 'fatal'])('refuses %j', (level) => {
    expect(isLogLevel(level)).toBe(false);
  });

  // Bug: `value in RANK` (log.ts, isLogLevel) is true for names inherited from
  // Object.prototype, so HERALD_LOG_LEVEL=toString passes validation.
  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__'])('refuses the Object.prototype name %s', (level) => {
    expect(isLogLevel(level)).toBe(false);
  });
});

describe('silentLogger', () => {
  it('writes nothing to stdout, even for errors', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    silentLogger.error('x', { error: new Error('boom') });
    silentLogger.child({ a: 1 }).error('y');
    expect(write).not.toHaveBeenCalled();
  });
});
