/**
 * A caller's trace context is untrusted input: the W3C `traceparent` of an HTTP request and the `traceparent` /
 * `Diagnostic-Id` application property of a Service Bus message are checked before they are kept in a run's input
 * (shared/telemetry.ts, runtime/telemetry.ts). Anything malformed, oversized or of the wrong type is ignored —
 * never an error — and a message's property bag is read only so far. (Through the real entry points — HTTP and
 * the Service Bus stand-in — in test/e2e/run-trace.test.ts.)
 */
import { checkedTraceparent } from '../../runtime';
import { messageTraceparent } from '../../shared/telemetry';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';
const GOOD = `00-${TRACE}-${SPAN}-01`;

test('a well-formed version-00 traceparent is kept, trimmed and lower-cased', () => {
  expect(checkedTraceparent(GOOD)).toBe(GOOD);
  expect(checkedTraceparent(`  ${GOOD.toUpperCase()}\t`)).toBe(GOOD);
  expect(checkedTraceparent(`00-${TRACE}-${SPAN}-00`)).toBe(`00-${TRACE}-${SPAN}-00`);
});

test.each([
  ['absent', undefined],
  ['null', null],
  ['a number', 42],
  ['an object', { traceparent: GOOD }],
  ['an array', [GOOD]],
  ['empty', ''],
  ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
  ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
  ['another version', `01-${TRACE}-${SPAN}-01`],
  ['version ff', `ff-${TRACE}-${SPAN}-01`],
  ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
  ['a non-hex character', `00-${TRACE.slice(0, -1)}g-${SPAN}-01`],
  ['extra fields', `${GOOD}-extra`],
  ['a line break inside', `00-${TRACE}\n-${SPAN}-01`],
  ['huge (1 MB)', `${GOOD}${' '.repeat(1024 * 1024)}`],
  ['a header injection attempt', `${GOOD}\r\nx-evil: 1`],
])('%s → ignored', (_what, value) => {
  expect(checkedTraceparent(value)).toBeUndefined();
});

test('a Service Bus message: traceparent, else Diagnostic-Id, any key case, application or user properties', () => {
  expect(messageTraceparent({ applicationProperties: { 'Diagnostic-Id': GOOD } })).toBe(GOOD);
  expect(messageTraceparent({ applicationProperties: { 'diagnostic-Id': GOOD } })).toBe(GOOD);
  expect(messageTraceparent({ userProperties: { TRACEPARENT: GOOD } })).toBe(GOOD);
  const other = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
  expect(messageTraceparent({ applicationProperties: { 'Diagnostic-Id': other, traceparent: GOOD } })).toBe(GOOD);
  // A malformed traceparent falls back to a good Diagnostic-Id; both bad → none.
  expect(messageTraceparent({ applicationProperties: { traceparent: 'nope', 'Diagnostic-Id': GOOD } })).toBe(GOOD);
  expect(messageTraceparent({ applicationProperties: { traceparent: 'nope', 'Diagnostic-Id': '|abc.1.' } })).toBeUndefined();
});

test.each([
  ['no metadata', undefined],
  ['a string', 'traceparent'],
  ['no properties', { messageId: 'm' }],
  ['properties as an array', { applicationProperties: [GOOD] }],
  ['properties as a string', { applicationProperties: GOOD }],
  ['a property of the wrong type', { applicationProperties: { traceparent: 7, 'Diagnostic-Id': { v: GOOD } } }],
])('a message with %s → none', (_what, metadata) => {
  expect(messageTraceparent(metadata)).toBeUndefined();
});

test('a message with very many properties: only the first 64 are looked at', () => {
  const bag: Record<string, string> = {};
  for (let i = 0; i < 10_000; i++) bag[`p${i}`] = 'x';
  bag.traceparent = GOOD;
  expect(messageTraceparent({ applicationProperties: bag })).toBeUndefined();
  const early: Record<string, string> = { traceparent: GOOD };
  for (let i = 0; i < 10_000; i++) early[`p${i}`] = 'x';
  expect(messageTraceparent({ applicationProperties: early })).toBe(GOOD);
});
