/**
 * README's "Layout" table is the map of the repository: every path it names exists, every link in it resolves,
 * and every top-level folder and every folder under shared/ has its own row (`name/`). A move or a new folder
 * that forgets the table fails here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
/** Folders that are not part of the source tree (build output, dependencies, tool state). */
const NOT_SOURCE = new Set(['node_modules', 'dist', 'coverage']);

interface LayoutRow {
  paths: string[];
  links: string[];
}

function layoutTable(): LayoutRow[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Layout\n');
  if (start < 0) throw new Error('README.md has no "## Layout" section');
  const next = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, next < 0 ? undefined : next);
  const rows = section.split('\n').filter((l) => l.startsWith('|') && !/^\|\s*path\s*\|/.test(l) && !/^\|[-\s|]+$/.test(l));
  return rows.map((row) => {
    const first = row.split('|')[1] ?? '';
    return {
      paths: [...first.matchAll(/`([^`]+)`/g)].map((m) => m[1]),
      links: [...row.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)].map((m) => m[1]).filter((l) => !/^[a-z]+:/.test(l)),
    };
  });
}

function subfolders(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !NOT_SOURCE.has(e.name))
    .map((e) => (dir ? `${dir}/${e.name}/` : `${e.name}/`))
    .sort();
}

const rows = layoutTable();
const named = new Set(rows.flatMap((r) => r.paths));

test('the layout table has rows, each naming at least one path', () => {
  expect(rows.length).toBeGreaterThan(10);
  expect(rows.filter((r) => r.paths.length === 0)).toEqual([]);
});

test('every path the layout table names exists (a folder as `name/`, a file by its name)', () => {
  const wrong = [...named].filter((p) => {
    const full = path.join(ROOT, p);
    if (!fs.existsSync(full)) return true;
    return p.endsWith('/') ? !fs.statSync(full).isDirectory() : !fs.statSync(full).isFile();
  });
  expect(wrong).toEqual([]);
});

test('every link in the layout table resolves', () => {
  const broken = rows.flatMap((r) => r.links).filter((l) => !fs.existsSync(path.join(ROOT, l)));
  expect(broken).toEqual([]);
});

test('every top-level folder and every folder under shared/ has a row', () => {
  const folders = [...subfolders(''), ...subfolders('shared')];
  expect(folders).toEqual(expect.arrayContaining(['shared/', 'shared/deploy/', 'shared/batch/']));
  expect(folders.filter((f) => !named.has(f))).toEqual([]);
});
