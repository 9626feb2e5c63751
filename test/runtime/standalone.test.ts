/**
 * The runtime stands alone (runtime/README.md): nothing under runtime/ imports the app, and the app imports the
 * runtime only through runtime/index.ts. Checked on the sources, every import and require of every .ts file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './helpers';

const IMPORT_RE = /(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/gm;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== 'node_modules' && e.name !== 'python') out.push(...tsFiles(full));
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** `[file, resolved import]` of every relative import in `dirs` (paths relative to the repository). */
function relativeImports(dirs: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const d of dirs) {
    const dir = path.join(ROOT, d);
    if (!fs.existsSync(dir)) continue;
    for (const f of tsFiles(dir)) {
      for (const m of fs.readFileSync(f, 'utf8').matchAll(IMPORT_RE)) {
        if (m[2].startsWith('.')) out.push([path.relative(ROOT, f), path.relative(ROOT, path.resolve(path.dirname(f), m[2])).split(path.sep).join('/')]);
      }
    }
  }
  return out;
}

it('runtime/ imports nothing outside runtime/', () => {
  const imports = relativeImports(['runtime']);
  expect(imports.length).toBeGreaterThan(20);
  expect(imports.filter(([, to]) => !to.startsWith('runtime/'))).toEqual([]);
});

it('the app reaches the runtime only through runtime/index.ts', () => {
  const imports = relativeImports(['functions', 'activities', 'orchestrations', 'shared', 'local', 'bench', 'examples']);
  const runtime = imports.filter(([, to]) => to === 'runtime' || to.startsWith('runtime/'));
  expect(runtime.length).toBeGreaterThan(5);
  expect(runtime.filter(([, to]) => to !== 'runtime' && to !== 'runtime/index')).toEqual([]);
});
