import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { run } from './replay.cli';

const ROOT = resolve(__dirname, '../..');
const SMALL = join(ROOT, 'test/fixtures/traces/small.csv');
const dir = mkdtempSync(join(tmpdir(), 'replay-cli-'));

function traceFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const FIELDS = [
  'policy',
  'slots',
  'requests',
  'hits',
  'misses',
  'missRatio',
  'clones',
  'reclaims',
  'budgetExhaustedAt',
  'waitP50Seconds',
  'waitP99Seconds',
];

describe('replay CLI', () => {
  it.each([
    ['missing header', '0,u,a\n1,u,b\n', /line 1: expected the header/],
    ['unsorted times', 'time,user,voice\n0,u,a\n5,u,b\n4,u,a\n', /line 4: time 4 is before/],
    ['a time that is not a number', 'time,user,voice\n0,u,a\nsoon,u,b\n', /line 3: time "soon"/],
    ['a negative time', 'time,user,voice\n-1,u,a\n', /line 2: time "-1"/],
    ['a bad hold', 'time,user,voice,hold\n0,u,a,1\n1,u,a,x\n', /line 3: hold "x"/],
    ['too few columns', 'time,user,voice\n0,u,a\n1,u\n', /line 3: expected 3 columns, found 2/],
    ['too many columns', 'time,user,voice\n0,u,a,9\n', /line 2: expected 3 columns, found 4/],
    ['an empty line inside', 'time,user,voice\n0,u,a\n\n1,u,b\n', /line 3: expected 3 columns/],
    ['an empty voice', 'time,user,voice\n0,u,\n', /line 2: empty voice/],
  ])('%s: exit 2, the line named, nothing on stdout', (name, text, message) => {
    const file = traceFile(`${name.replace(/\W+/g, '-')}.csv`, text);
    const r = run(['--trace', file, '--slots', '3', '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(file);
  });

  it.each([
    [['--slots', '3'], /--trace FILE is required/],
    [['--trace', SMALL], /--slots N is required/],
    [['--trace', SMALL, '--slots', '0'], /--slots must be a number ≥ 1/],
    [['--trace', SMALL, '--slots', '3', '--policy', 'fifo'], /--policy must be one of/],
    [['--trace', SMALL, '--slots', '3', '--budget', 'x'], /--budget must be/],
    [['--trace', SMALL, '--slots', '3', '--bogus'], /Unknown option/],
    [['--trace', join(dir, 'absent.csv'), '--slots', '3'], /cannot read .*ENOENT/],
  ])('bad usage %j: exit 2', (argv, message) => {
    const r = run(argv);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  it('--json prints exactly the contract fields, one object', () => {
    for (const extra of [['--pure'], ['--budget', '95', '--period-days', '30'], []]) {
      for (const policy of ['service', 'lru', 'belady']) {
        const r = run(['--trace', SMALL, '--slots', '10', '--policy', policy, ...extra, '--json']);
        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
        const lines = r.stdout.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        const out = JSON.parse(lines[0]);
        expect(Object.keys(out)).toEqual(FIELDS);
        expect(out.policy).toBe(policy);
        expect(out.slots).toBe(10);
        expect(out.requests).toBe(14509);
        expect(out.hits + out.misses).toBe(out.requests);
        expect(out.missRatio).toBeCloseTo(out.misses / out.requests, 5);
        for (const f of ['clones', 'reclaims', 'waitP50Seconds', 'waitP99Seconds'])
          expect(typeof out[f]).toBe('number');
        expect(out.budgetExhaustedAt === null || typeof out.budgetExhaustedAt === 'number').toBe(
          true,
        );
      }
    }
  });

  it('accepts a trace without a final newline, with CRLF, with fractional times', () => {
    const file = traceFile('crlf.csv', 'time,user,voice\r\n0.5,u,a\r\n0.5,v,b\r\n1.25,u,a');
    const out = JSON.parse(
      run(['--trace', file, '--slots', '1', '--pure', '--policy', 'lru', '--json']).stdout,
    );
    expect(out).toMatchObject({ requests: 3, hits: 0, misses: 3, clones: 3, reclaims: 2 });
  });

  it('without --json: a few lines for people', () => {
    const r = run(['--trace', SMALL, '--slots', '10', '--pure']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/miss ratio 0\.\d+/);
  });

  it('`npm run --silent replay -- … --json` prints one JSON object and nothing else', async () => {
    const { stdout } = await promisify(execFile)(
      'npm',
      [
        'run',
        '--silent',
        'replay',
        '--',
        '--trace',
        SMALL,
        '--slots',
        '30',
        '--pure',
        '--policy',
        'lru',
        '--json',
      ],
      { cwd: ROOT, timeout: 120_000 },
    );
    expect(Object.keys(JSON.parse(stdout))).toEqual(FIELDS);
    expect(stdout.trim().split('\n')).toHaveLength(1);
  });
});
