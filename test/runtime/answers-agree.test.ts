/** The shadow comparison of two answers (runtime/traffic-counters.ts `answersAgree`): tolerance, exactness, bounds. */
import { answersAgree } from '../../runtime/traffic-counters';

test('numbers agree within the tolerance; classes, text and structure must match exactly', () => {
  expect(answersAgree('[0.5, 1.5]', '[0.5000001, 1.5]', 1e-6)).toBe(true);
  expect(answersAgree('[0.5, 1.5]', '[0.51, 1.5]', 1e-6)).toBe(false);
  expect(answersAgree('{"label":"cat","p":0.9}', '{"p":0.9,"label":"cat"}', 0)).toBe(true);
  expect(answersAgree('{"label":"cat"}', '{"label":"dog"}', 1)).toBe(false);
  expect(answersAgree('[1, 2]', '[1, 2, 3]', 1)).toBe(false);
  expect(answersAgree('not json', 'not json', 0)).toBe(true);
  expect(answersAgree('not json', 'not json!', 0)).toBe(false);
});

test('answers nested deeper than the comparison goes are not parsed: they disagree, whatever their size', () => {
  const deep = (n: number, leaf: string) => '['.repeat(n) + leaf + ']'.repeat(n);
  expect(answersAgree(deep(64, '1'), deep(64, '1.0000001'), 1e-6)).toBe(true);
  expect(answersAgree(deep(65, '1'), deep(65, '1.0000001'), 1e-6)).toBe(false);
  // 1 MiB of brackets (the largest answer compared): refused by the linear depth scan, no recursion, no throw.
  const huge = deep(512 * 1024, '1');
  expect(answersAgree(huge, deep(512 * 1024, '2'), 1)).toBe(false);
  expect(answersAgree(huge, huge, 0)).toBe(true);
});
