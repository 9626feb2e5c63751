/**
 * Rules checked on the sources (comments aside), so they hold as the code changes:
 * - activity and orchestration names are spelled once, in the workflow contracts (shared/deploy/contract.ts,
 *   shared/batch/contract.ts); code everywhere else goes through the contract's constants;
 * - no double cast (`as unknown as`): a value is typed by a declared interface or a type guard;
 * - no `instanceof` on a deploy target: what callers need is on the `DeployTarget` interface (docs/architecture.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BATCH } from '../../shared/batch/contract';
import { DEPLOY } from '../../shared/deploy/contract';

const ROOT = path.resolve(__dirname, '../..');
const DIRS = ['functions', 'orchestrations', 'activities', 'shared', 'local', 'examples', 'bench'];
const CONTRACTS = new Set(['shared/deploy/contract.ts', 'shared/batch/contract.ts']);
/**
 * Names that are also something else a user sees: `smokeTest` is a step of a deployment run's status
 * (`StepName`, shared/deploy/run-status.ts) as well as the activity that runs it.
 */
const ALSO_STEP_NAMES = new Set(['smokeTest']);

function tsFiles(dir: string): string[] {
  const full = path.join(ROOT, dir);
  if (!fs.existsSync(full)) return [];
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'python' ? [] : tsFiles(rel);
    return e.isFile() && e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** The source without comments (block comments, then line comments that do not follow a `:` as in URLs). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

const names = [...Object.values(DEPLOY), ...Object.values(BATCH)].map((d) => d.name);

test('the contracts name every workflow piece', () => {
  expect(names).toEqual(expect.arrayContaining(['deployModel', 'registerModel', 'batchRun', 'batchScoreMiniBatch']));
});

test('no activity or orchestration name is a string literal outside the contract files', () => {
  const files = DIRS.flatMap(tsFiles).filter((f) => !CONTRACTS.has(f));
  expect(files.length).toBeGreaterThan(50);
  const found: string[] = [];
  for (const f of files) {
    const src = code(fs.readFileSync(path.join(ROOT, f), 'utf8'));
    for (const n of names) {
      if (ALSO_STEP_NAMES.has(n)) continue;
      if (new RegExp(`['"\`]${n}['"\`]`).test(src)) found.push(`${f}: ${n}`);
    }
  }
  expect(found).toEqual([]);
});

function sources(): Array<{ file: string; src: string }> {
  return DIRS.flatMap(tsFiles).map((file) => ({ file, src: code(fs.readFileSync(path.join(ROOT, file), 'utf8')) }));
}

test('no `as unknown as` in the app, the runtime or the local host', () => {
  const all = [...sources(), ...tsFiles('runtime').map((file) => ({ file, src: code(fs.readFileSync(path.join(ROOT, file), 'utf8')) }))];
  expect(all.filter(({ src }) => /\bas\s+unknown\s+as\b/.test(src)).map(({ file }) => file)).toEqual([]);
});

test('no `instanceof` on a deploy target', () => {
  expect(sources().filter(({ src }) => /\binstanceof\s+\w*Target\b/.test(src)).map(({ file }) => file)).toEqual([]);
});
