/**
 * The front's batcher of shadow copies (runtime/front.ts, MirrorBatcher), on Jest's fake clock (timers, immediates and
 * `performance.now()`): which copies leave together, and when.
 */
import { MirrorBatcher } from '../../runtime/front';
import { MAX_BATCH_ITEMS } from '../../runtime/mirror-batch';

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

const copy = () => ({ path: '/score', contentType: 'application/json', auth: undefined, body: Buffer.from('[1]'), primary: { status: 200 }, tolerance: 0, done: () => undefined });

/** A batcher whose batches come back at once; `batches` lists their sizes in order. */
function batcher(busy: boolean, gatherMs: number) {
  const batches: number[] = [];
  const b = new MirrorBatcher((copies, sent) => {
    batches.push(copies.length);
    sent();
  }, () => busy, 25, gatherMs);
  return { b, batches };
}

test('gathering: a full batch leaves at once, and the copies left over wait for their own gather time', () => {
  const gatherMs = 300;
  const { b, batches } = batcher(true, gatherMs);
  for (let i = 0; i < MAX_BATCH_ITEMS + 3; i++) b.add(copy());
  jest.advanceTimersByTime(1);
  expect(batches).toEqual([MAX_BATCH_ITEMS]);
  jest.advanceTimersByTime(gatherMs - 10);
  expect(batches).toEqual([MAX_BATCH_ITEMS]);
  jest.advanceTimersByTime(10);
  expect(batches).toEqual([MAX_BATCH_ITEMS, 3]);
  // Again: the list of waiting copies starts afresh, and the same rule holds.
  for (let i = 0; i < MAX_BATCH_ITEMS + 1; i++) b.add(copy());
  jest.advanceTimersByTime(1);
  expect(batches).toEqual([MAX_BATCH_ITEMS, 3, MAX_BATCH_ITEMS]);
  jest.advanceTimersByTime(gatherMs);
  expect(batches).toEqual([MAX_BATCH_ITEMS, 3, MAX_BATCH_ITEMS, 1]);
  b.clear();
});

test.each([
  ['an idle', false],
  ['a busy', true],
])('without gathering, on %s front, what waits behind a full batch leaves with it', (_how, busy) => {
  const { b, batches } = batcher(busy, 0);
  for (let i = 0; i < MAX_BATCH_ITEMS + 3; i++) b.add(copy());
  jest.advanceTimersByTime(1);
  expect(batches).toEqual([MAX_BATCH_ITEMS, 3]);
  b.clear();
});
