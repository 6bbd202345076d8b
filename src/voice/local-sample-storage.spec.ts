import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSampleStorage } from './local-sample-storage';
import { sampleKeyOf, type ListedSample } from './sample-storage.port';

describe('LocalSampleStorage sweep listings', () => {
  let dir: string;
  const old = new Date('2026-01-01T00:00:00Z');
  const cutOff = new Date('2026-01-01T01:00:00Z');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vs-local-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, mtime = old): string {
    const path = join(dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, 'x');
    utimesSync(path, mtime, mtime);
    return path;
  }

  it('lists only samples of its own key shape, and removes only its own stale .part files', async () => {
    const sample = sampleKeyOf(randomUUID());
    const part = sampleKeyOf(randomUUID());
    const fresh = sampleKeyOf(randomUUID());
    file(sample);
    file(`${part}.part`);
    file(`${fresh}.part`, new Date('2026-01-01T02:00:00Z'));
    // Someone else's files in the same folder are never the sweep's.
    const foreign = [
      file('notes.txt'),
      file('ab/readme.part'),
      file('ab/readme'),
      file(`ab/cd${randomUUID().slice(2)}`),
      file(`zz/${randomUUID()}`),
      file(`${sampleKeyOf(randomUUID()).slice(3)}.part`),
    ];

    const listed: ListedSample[] = [];
    const storage = new LocalSampleStorage(dir);
    for await (const page of storage.listSamples()) listed.push(...page);
    expect(listed).toEqual([{ key: sample, modifiedAt: old }]);

    expect(await storage.removeAbandonedWrites(cutOff)).toBe(1);
    expect(existsSync(join(dir, `${part}.part`))).toBe(false);
    expect(existsSync(join(dir, `${fresh}.part`))).toBe(true);
    for (const path of foreign) expect(existsSync(path)).toBe(true);
  });

  it('lists nothing in a folder that does not exist yet', async () => {
    const storage = new LocalSampleStorage(join(dir, 'missing'));
    const pages: ListedSample[][] = [];
    for await (const page of storage.listSamples()) pages.push(page);
    expect(pages).toEqual([]);
    expect(await storage.removeAbandonedWrites(cutOff)).toBe(0);
  });
});
