// Loaded with `node --import ./bench/register.ts`: Node strips this file's types itself; every other
// .ts file (decorators, parameter properties) is transpiled here with TypeScript, to CommonJS like
// the build, so test/support helpers and src modules run from source with their own __dirname.
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const options: ts.CompilerOptions = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2023,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
  inlineSourceMap: true,
  inlineSources: true,
};

const isOwnTs = (url: string): boolean =>
  url.startsWith('file:') && url.endsWith('.ts') && !url.includes('/node_modules/');

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      // Extension-less relative imports, as the sources write them (CommonJS resolution).
      if (!/^\.{0,2}\//.test(specifier) || !context.parentURL) throw err;
      for (const candidate of [`${specifier}.ts`, `${specifier}/index.ts`]) {
        const url = new URL(candidate, context.parentURL).href;
        try {
          readFileSync(fileURLToPath(url));
          return { url, format: 'commonjs', shortCircuit: true };
        } catch {
          // try the next one
        }
      }
      throw err;
    }
  },
  load(url, context, nextLoad) {
    if (!isOwnTs(url)) return nextLoad(url, context);
    const file = fileURLToPath(url);
    const out = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: options,
      fileName: file,
    });
    return { format: 'commonjs', source: out.outputText, shortCircuit: true };
  },
});
