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
