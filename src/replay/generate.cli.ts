import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { generateRows, toCsv } from './generate';

const USAGE =
  'usage: npm run --silent replay:gen -- --users U --voices-per-user V --days D --seed S [--out FILE]\n' +
  '         [--sessions-per-day N] [--active-days N] [--present-at-start SHARE]\n';

function whole(raw: string | undefined, name: string, min: number): number {
  const value = Number(raw);
  if (raw === undefined || !Number.isFinite(value) || value < min)
    throw new Error(`--${name} must be a number ≥ ${min}, got "${String(raw)}"`);
  return value;
}

// The trace is the program's output (stdout without --out); the seed goes to stderr so the CSV
// stays clean and a run can be repeated.
function main(): number {
  try {
    const { values } = parseArgs({
      options: {
        users: { type: 'string' },
        'voices-per-user': { type: 'string', default: '1' },
        days: { type: 'string' },
        seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
        out: { type: 'string' },
        'sessions-per-day': { type: 'string', default: '1.5' },
        'active-days': { type: 'string', default: '20' },
        'present-at-start': { type: 'string', default: '0.5' },
      },
      strict: true,
    });
    const options = {
      users: Math.floor(whole(values.users, 'users', 1)),
      voicesPerUser: Math.floor(whole(values['voices-per-user'], 'voices-per-user', 1)),
      days: whole(values.days, 'days', 0),
      seed: Math.floor(whole(values.seed, 'seed', 0)),
      sessionsPerDay: whole(values['sessions-per-day'], 'sessions-per-day', 0),
      meanActiveDays: whole(values['active-days'], 'active-days', 0),
      presentAtStart: Math.min(1, whole(values['present-at-start'], 'present-at-start', 0)),
    };
    const rows = generateRows(options);
    const csv = toCsv(rows);
    if (values.out) writeFileSync(values.out, csv);
    else process.stdout.write(csv);
    process.stderr.write(
      `seed ${options.seed}: ${rows.length} activations of ${options.users} users over ${options.days} days${values.out ? ` in ${values.out}` : ''}\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(
      `replay:gen: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`,
    );
    return 2;
  }
}

process.exitCode = main();
