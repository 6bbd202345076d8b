import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { POLICY_NAMES, type PolicyName } from '../policy/reclaim-policy';
import { DEFAULT_REPLAY_OPTIONS, replay, type ReplayResult } from './replay';
import { parseTrace, TraceError } from './trace';

const USAGE =
  'usage: npm run --silent replay -- --trace FILE --slots N [--policy service|lru|belady] [--pure]\n' +
  '         [--budget N] [--period-days D] [--clone-seconds S] [--lease-seconds S]\n' +
  '         [--min-residency-seconds S] [--min-idle-seconds S] [--reserve SHARE] [--json]\n';

/** Bad usage or a bad trace: exit code 2, one message on stderr, nothing on stdout. */
class UsageError extends Error {}

function number(
  values: Record<string, string | boolean | undefined>,
  name: string,
  fallback: number,
  min: number,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value) || value < min)
    throw new UsageError(`--${name} must be a number ≥ ${min}, got "${String(raw)}"`);
  return value;
}

/** The contract's fields only, in the contract's order. */
function contractFields(r: ReplayResult): ReplayResult {
  return {
    policy: r.policy,
    slots: r.slots,
    requests: r.requests,
    hits: r.hits,
    misses: r.misses,
    missRatio: r.missRatio,
    clones: r.clones,
    reclaims: r.reclaims,
    budgetExhaustedAt: r.budgetExhaustedAt,
    waitP50Seconds: r.waitP50Seconds,
    waitP99Seconds: r.waitP99Seconds,
  };
}

/** node:util's parseArgs errors (by code: `instanceof Error` fails across realms, as in jest). */
function isParseArgsError(err: unknown): err is { message: string } {
  return (
    typeof err === 'object' &&
    err !== null &&
    String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS') &&
    typeof (err as { message?: unknown }).message === 'string'
  );
}

export function run(argv: string[]): { stdout: string; code: number; stderr: string } {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        trace: { type: 'string' },
        slots: { type: 'string' },
        policy: { type: 'string', default: 'service' },
        pure: { type: 'boolean', default: false },
        budget: { type: 'string' },
        'period-days': { type: 'string' },
        'clone-seconds': { type: 'string' },
        'lease-seconds': { type: 'string' },
        'min-residency-seconds': { type: 'string' },
        'min-idle-seconds': { type: 'string' },
        reserve: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });
    if (!values.trace) throw new UsageError('--trace FILE is required');
    const slots = number(values, 'slots', NaN, 1);
    if (!Number.isInteger(slots))
      throw new UsageError('--slots N is required (a whole number ≥ 1)');
    const policy = values.policy as PolicyName;
    if (!POLICY_NAMES.includes(policy))
      throw new UsageError(
        `--policy must be one of ${POLICY_NAMES.join(', ')}, got "${values.policy}"`,
      );
    const budgetRaw = values.budget === undefined ? null : number(values, 'budget', 0, 0);
    if (budgetRaw !== null && !Number.isInteger(budgetRaw))
      throw new UsageError('--budget must be a whole number of clones');
    const d = DEFAULT_REPLAY_OPTIONS;
    const options = {
      policy,
      slots,
      pure: values.pure,
      budget: budgetRaw,
      periodDays: number(values, 'period-days', d.periodDays, Number.MIN_VALUE),
      cloneSeconds: number(values, 'clone-seconds', d.cloneSeconds, 0),
      leaseSeconds: number(values, 'lease-seconds', d.leaseSeconds, 0),
      minResidencySeconds: number(values, 'min-residency-seconds', d.minResidencySeconds, 0),
      minIdleSeconds: number(values, 'min-idle-seconds', d.minIdleSeconds, 0),
      reserveShare: number(values, 'reserve', d.reserveShare, 0),
    };
    let text: string;
    try {
      text = readFileSync(values.trace, 'utf8');
    } catch (err) {
      throw new UsageError(
        `cannot read ${values.trace}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    let trace;
    try {
      trace = parseTrace(text);
    } catch (err) {
      if (err instanceof TraceError) throw new UsageError(`${values.trace} ${err.message}`);
      throw err;
    }
    const result = contractFields(replay(trace, options));
    if (values.json) return { stdout: `${JSON.stringify(result)}\n`, stderr: '', code: 0 };
    const lines = [
      `policy ${result.policy}, ${result.slots} slots, ${options.pure ? 'pure cache' : 'service rules'}`,
      `requests ${result.requests}: ${result.hits} hits, ${result.misses} misses (miss ratio ${result.missRatio})`,
      `clones ${result.clones}, reclaims ${result.reclaims}, budget exhausted at ${result.budgetExhaustedAt === null ? 'never' : `${result.budgetExhaustedAt} s`}`,
      `wait p50 ${result.waitP50Seconds} s, p99 ${result.waitP99Seconds} s`,
    ];
    return { stdout: `${lines.join('\n')}\n`, stderr: '', code: 0 };
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err))
      return { stdout: '', stderr: `replay: ${err.message}\n${USAGE}`, code: 2 };
    throw err;
  }
}

// The result is the program's output, so it goes to stdout directly rather than through a logger.
if (require.main === module) {
  const { stdout, stderr, code } = run(process.argv.slice(2));
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exitCode = code;
}
