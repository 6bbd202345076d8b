import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { K8S } from '../support/deploy-files';

describe.each([['base'], ['overlays/example'], ['components/prometheus-operator']])(
  'kustomization %s',
  (sub) => {
    it('uses every YAML file of its directory, as a resource or a patch', () => {
      const dir = join(K8S, sub);
      const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as {
        resources?: string[];
        patches?: Array<{ path: string }>;
      };
      const used = new Set([...(k.resources ?? []), ...(k.patches ?? []).map((p) => p.path)]);
      const files = readdirSync(dir).filter(
        (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
      );
      expect(files.filter((f) => !used.has(f))).toEqual([]);
    });
  },
);
