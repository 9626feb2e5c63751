/** The bounded parsers (`shared/parse.ts`): size, depth pre-scans, alias limit, value walk. */
import YAML from 'yaml';
import { assertValueBounds, jsonNestingDepth, MAX_INPUT_DEPTH, parseJsonBounded, parseYamlBounded, yamlNestingDepth } from '../../shared/parse';

const nest = (n: number) => '['.repeat(n) + '1' + ']'.repeat(n);
function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  return 1 + Math.max(0, ...Object.values(v as object).map(depthOf));
}

test('JSON depth pre-scan: brackets outside strings, escapes handled', () => {
  expect(jsonNestingDepth('{"a": [1, {"b": [[2]]}]}')).toBe(5);
  expect(jsonNestingDepth('{"a": "[[[[[[", "b": "\\"[[["}')).toBe(1);
  expect(jsonNestingDepth('["\\\\", [[1]]]')).toBe(3);
  expect(jsonNestingDepth(nest(100_000), 64)).toBe(65);
});

test('YAML depth estimate is an upper bound of the real depth (plus at most a little) and sees every style', () => {
  const docs = [
    'a: 1\nb: 2\n',
    'a:\n  b:\n    c:\n      d: |\n        text [[[\n        more\n      e:\n        f:\n          g: 1\n',
    '- - - - x\n- y\n',
    'a:\n- b\n- c: [1, {d: [2]}]\n',
    'model:\n  files: [a, b]\n  tags: {x: "[[[[", y: \'it\'\'s [\'}\n',
    'a: "multi\n  line [ ]"\nb:\n  c: 1\n',
    'k: >\n  folded\n  text\nz:\n  - 1\n  - - 2\n    - 3\n',
    'a: &x [1, [2, [3]]]\nb: [*x]\n',
    '- a: 1\n  b:\n    - c\n',
    '# comment [[[[\na: {b: [c, d]} # [[[\n',
  ];
  for (const d of docs) {
    const real = depthOf(YAML.parse(d));
    const est = yamlNestingDepth(d);
    expect({ d, ok: est >= real - 1 && est <= real + 2 }).toEqual({ d, ok: true });
  }
  expect(yamlNestingDepth(`model: ${nest(100_000)}`, 64)).toBe(65);
  expect(yamlNestingDepth(Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n', 64)).toBe(65);
  expect(yamlNestingDepth(`x: ${'- '.repeat(200)}1`, 64)).toBe(65);
});

test('deep input is refused before parsing: InputTooDeep naming the input', () => {
  expect(() => parseJsonBounded(nest(100_000), { what: 'the body' })).toThrow(expect.objectContaining({ code: 'InputTooDeep', httpStatus: 400, message: expect.stringContaining('the body is nested more than 64 levels') }));
  expect(() => parseYamlBounded(`a: ${nest(100_000)}`, { what: 'deploy.yaml' })).toThrow(expect.objectContaining({ code: 'InputTooDeep' }));
  expect(() => parseJsonBounded(nest(MAX_INPUT_DEPTH + 1), { what: 'x' })).toThrow(expect.objectContaining({ code: 'InputTooDeep' }));
  expect(parseJsonBounded(nest(MAX_INPUT_DEPTH), { what: 'x' })).toBeDefined();
  expect(parseYamlBounded(`a: ${nest(30)}`, { what: 'x' })).toBeDefined();
});

test('size is checked first; alias bombs and node counts are bounded', () => {
  expect(() => parseJsonBounded(`"${'x'.repeat(2000)}"`, { what: 'x', maxBytes: 1000 })).toThrow(expect.objectContaining({ code: 'InputTooLarge' }));
  expect(() => parseJsonBounded(`"${'é'.repeat(600)}"`, { what: 'x', maxBytes: 1000 })).toThrow(expect.objectContaining({ code: 'InputTooLarge' }));
  const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]'].join('\n');
  expect(() => parseYamlBounded(bomb, { what: 'bomb.yaml' })).toThrow(expect.objectContaining({ code: 'InputTooLarge', message: expect.stringContaining('alias') }));
  expect(() => parseJsonBounded(JSON.stringify(Array(2000).fill(1)), { what: 'x', maxNodes: 1000 })).toThrow(expect.objectContaining({ code: 'InputTooLarge' }));
});

test('syntax errors keep their own code and say where', () => {
  expect(() => parseJsonBounded('{"a": ', { what: 'deploy.json', malformedCode: 'ManifestMalformed' })).toThrow(expect.objectContaining({ code: 'ManifestMalformed', message: expect.stringContaining('deploy.json is not valid JSON') }));
  expect(() => parseYamlBounded('a: [1, 2', { what: 'x.yaml' })).toThrow(expect.objectContaining({ code: 'Malformed', message: expect.stringContaining('x.yaml is not valid YAML') }));
});

test('already-parsed values are walked without recursion', () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  expect(() => assertValueBounds(deep, { what: 'the message' })).toThrow(expect.objectContaining({ code: 'InputTooDeep' }));
  expect(() => assertValueBounds({ a: [1, { b: 2 }] }, { what: 'x' })).not.toThrow();
});

test('what the pre-scan under-counts (a block list at its key\'s indentation) is still refused after parsing', () => {
  // k:\n- k:\n  - k: … : every "key:" + "- item" pair adds two levels but one indentation step.
  const text = 'k:\n' + Array.from({ length: 60 }, (_, i) => `${'  '.repeat(i)}- k:`).join('\n') + ' 1\n';
  expect(depthOf(YAML.parse(text))).toBeGreaterThan(MAX_INPUT_DEPTH);
  expect(yamlNestingDepth(text)).toBeLessThanOrEqual(MAX_INPUT_DEPTH);
  expect(() => parseYamlBounded(text, { what: 'x.yaml' })).toThrow(expect.objectContaining({ code: 'InputTooDeep' }));
});
