import { readdirSync } from 'node:fs';
import type { TestWorld } from './service';

/** Strings that have broken services before: injections, traversal, encodings, edge lengths. */
export const NASTY_STRINGS = [
  "Robert'); DROP TABLE voices;--",
  "' OR '1'='1",
  '1; SELECT pg_sleep(10)',
  '$1',
  '../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '/etc/passwd',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
  'a\u0000b',
  '\u0000',
  '<script>alert(1)</script>',
  '{{7*7}}',
  '${jndi:ldap://x/a}',
  '__proto__',
  'constructor',
  '\u202egnp.exe',
  'Zalgo h̸̡̪̯ͨ͊̽̅̾̎Ȩ̬̩̾͛ͪ̈́̀́͘',
  '👨‍👩‍👧‍👦',
  '\uFEFFbom',
  '\r\nX-Injected: 1',
  '',
  ' ',
  'a'.repeat(101),
  'ñ'.repeat(100),
  '\uD800',
];

/** Every file under the world's sample folder (relative names), including `.part` leftovers. */
export function storedFiles(world: TestWorld): string[] {
  return readdirSync(world.storageDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

/** Ids and statuses of every voice row of the world. */
export function voiceRows(world: TestWorld): Promise<Array<{ id: string; status: string }>> {
  return world.db(
    async (c) =>
      (await c.query<{ id: string; status: string }>('SELECT id, status FROM voices')).rows,
  );
}

/** An answer must be a problem document: the content type, the five fields, and no stack. */
export function problemShape(
  status: number,
  contentType: string | null | undefined,
  body: unknown,
): string[] {
  const issues: string[] = [];
  if (!String(contentType ?? '').startsWith('application/problem+json'))
    issues.push(`content-type ${contentType}`);
  if (typeof body !== 'object' || body === null) return [...issues, 'body is not JSON'];
  const b = body as Record<string, unknown>;
  if (b.status !== status) issues.push(`status field ${String(b.status)}`);
  if (typeof b.code !== 'string' || !/^[a-z][a-z0-9_]*$/.test(b.code)) issues.push('code');
  for (const f of ['type', 'title', 'detail'])
    if (typeof b[f] !== 'string') issues.push(`missing ${f}`);
  if (/\bat .+:\d+:\d+|node_modules|\/src\/|\.ts:\d/.test(JSON.stringify(b))) issues.push('stack');
  return issues;
}

/** The seed of a run's generated requests: FUZZ_SEED to replay one, else a fresh one (printed). */
export function fuzzSeed(): number {
  const given = Number(process.env.FUZZ_SEED);
  return Number.isInteger(given) ? given : Math.floor(Math.random() * 2 ** 31);
}

/** The `sub` of a JWT, or null when it is not one (the fuzzer sends garbage too). */
export function subjectOf(token: string | null | undefined): string | null {
  try {
    const payload = JSON.parse(
      Buffer.from(String(token).split('.')[1] ?? '', 'base64url').toString(),
    ) as { sub?: unknown };
    return typeof payload.sub === 'string' ? payload.sub : null;
  } catch {
    return null;
  }
}

/**
 * Flips the case of the letters of a route template whose bit is set in `mask` (cycling through
 * it), leaving `{placeholders}` as they are.
 */
export function mangleCase(template: string, mask: number): string {
  let i = 0;
  const flip = (c: string) =>
    (mask >> (i++ % 31)) & 1 ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c;
  return template
    .split(/(\{\w+\})/)
    .map((part) => (part.startsWith('{') ? part : part.replace(/[a-z]/gi, flip)))
    .join('');
}

/** Runs `fn` over `items`, `width` at a time, in order of start; every item runs exactly once. */
export async function inParallel<T>(
  items: readonly T[],
  width: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** The voice ids of `owners` that `text` shows although they belong to someone else than `user`. */
export function foreignIds(text: string, user: string, owners: Map<string, string>): string[] {
  return [...new Set(text.match(UUID) ?? [])].filter((id) => {
    const owner = owners.get(id.toLowerCase());
    return owner !== undefined && owner !== user;
  });
}
