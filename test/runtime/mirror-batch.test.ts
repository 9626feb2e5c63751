/**
 * `POST /.mdf/mirror`, the replica's side of batched shadow copies (runtime/mirror-batch.ts), over HTTP on a real
 * runtime (score.js, key auth): each copy is scored as its own `POST /score` and counted as one in /metrics; a bad
 * frame is a 400 with its code that disturbs nothing; the key is required; and a real front mirroring to it compares
 * every copy through batches.
 */
import * as path from 'node:path';
import { ServiceFront } from '../../runtime/front';
import { encodeMirrorRequest, decodeMirrorResponse, MAX_BATCH_ITEMS, MIRROR_BATCH_PATH, MIRROR_BATCH_TYPE } from '../../runtime/mirror-batch';
import { EX, post, start, type Started } from './helpers';

const keys = { primaryKey: 'pk-mirror-test', secondaryKey: 'sk-mirror-test' };
const auth = { authorization: `Bearer ${keys.primaryKey}` };
let s: Started;
beforeAll(async () => {
  s = await start({ entryScript: path.join(EX, 'node', 'score.js'), env: { FACTOR: '10' }, workers: 2, keys });
});
afterAll(() => s.server.stop());

const frame = (items: Array<{ path: string; contentType: string; body: Buffer }>, answerBytes = 1 << 20) => encodeMirrorRequest(items, answerBytes);
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const sendBatch = (body: Buffer, headers: Record<string, string> = auth) =>
  fetch(`${s.url}${MIRROR_BATCH_PATH}`, { method: 'POST', headers: { 'content-type': MIRROR_BATCH_TYPE, ...headers }, body: new Uint8Array(body) });
const scoreCount = async (status: string) => {
  const text = await (await fetch(`${s.url}/metrics`, { headers: auth })).text();
  const m = new RegExp(`^scoring_requests_total\\{route="score",status="${status}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};

test('each copy of a batch is scored as its own POST /score, answered in order with its status and scoring time, and counted in /metrics', async () => {
  const ok0 = await scoreCount('200');
  const bad0 = await scoreCount('400');
  const items = [
    { path: '/score', contentType: 'application/json', body: json({ data: [1, 2] }) },
    { path: '/score?verbose=1', contentType: 'application/json', body: json({ data: [3] }) },
    { path: '/score', contentType: 'application/json', body: Buffer.from('not json') },
    { path: '/score', contentType: 'application/json', body: json({ other: 1 }) },
  ];
  const res = await sendBatch(frame(items));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe(MIRROR_BATCH_TYPE);
  const answers = decodeMirrorResponse(Buffer.from(await res.arrayBuffer()), items.length);
  expect(answers.map((a) => a.s)).toEqual([200, 200, 400, 500]);
  expect(JSON.parse(answers[0].body!.toString()).result).toEqual([10, 20]);
  expect(JSON.parse(answers[1].body!.toString()).result).toEqual([30]);
  expect(JSON.parse(answers[2].body!.toString()).error.code).toBe('InvalidInput');
  expect(JSON.parse(answers[3].body!.toString()).error.code).toBe('RunFailed');
  for (const a of answers) expect(a.ms).toBeGreaterThan(0);
  expect(await scoreCount('200')).toBe(ok0 + 2);
  expect(await scoreCount('400')).toBe(bad0 + 1);
});

test('answers past the batch\'s answer bytes are left out (`over`), the others kept', async () => {
  const items = [1, 2, 3].map((x) => ({ path: '/score', contentType: 'application/json', body: json({ data: [x] }) }));
  const res = await sendBatch(frame(items, 60));
  const answers = decodeMirrorResponse(Buffer.from(await res.arrayBuffer()), 3);
  expect(answers.map((a) => a.s)).toEqual([200, 200, 200]);
  expect(answers[0].body).toBeDefined();
  expect(answers.filter((a) => a.over)).not.toHaveLength(0);
  for (const a of answers.filter((x) => x.over)) expect(a.body).toBeUndefined();
});

test('the batch path needs the service key, POST, and a well-formed frame; a bad one is a 400 with its code and the service goes on', async () => {
  const good = frame([{ path: '/score', contentType: 'application/json', body: json({ data: [1] }) }]);
  expect((await sendBatch(good, {})).status).toBe(401);
  expect((await sendBatch(good, { authorization: 'Bearer wrong' })).status).toBe(401);
  expect((await fetch(`${s.url}${MIRROR_BATCH_PATH}`, { headers: auth })).status).toBe(405);
  const bad = async (body: Buffer, why: RegExp) => {
    const r = await sendBatch(body);
    expect(r.status).toBe(400);
    const e = (await r.json()).error;
    expect(e.code).toBe('BadMirrorBatch');
    expect(e.message).toMatch(why);
  };
  await bad(Buffer.from([0, 0]), /4-byte header/);
  await bad(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2]), /index length/);
  const header = (index: unknown, tail = Buffer.alloc(0)) => {
    const j = Buffer.from(typeof index === 'string' ? index : JSON.stringify(index));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(j.length);
    return Buffer.concat([len, j, tail]);
  };
  await bad(header('{nope'), /not JSON/);
  await bad(header({ v: 1, answerBytes: 10, items: [{ p: '/metrics', t: 'application/json', n: 0 }] }), /only POST \/score copies/);
  await bad(header({ v: 1, answerBytes: 10, items: [{ p: '/score/../metrics', t: 'application/json', n: 0 }] }), /only POST \/score copies/);
  await bad(header({ v: 1, answerBytes: 10, items: Array.from({ length: MAX_BATCH_ITEMS + 1 }, () => ({ p: '/score', t: 'a', n: 0 })) }), /items/);
  await bad(header({ v: 1, answerBytes: 10, items: [{ p: '/score', t: 'a', n: 5 }] }, Buffer.from('ab')), /past the end/);
  await bad(header({ v: 1, answerBytes: 10, items: [{ p: '/score', t: 'a', n: 1 }] }, Buffer.from('abc')), /2 bytes follow/);
  await bad(header({ v: 2, answerBytes: 10, items: [] }), /invalid/);
  await bad(header('['.repeat(60_000)), /nests deeper than 3/);
  await bad(header({ v: 1, answerBytes: 10, items: [{ p: '/score', t: 'a', n: 0, x: [[1]] }] }), /nests deeper than 3/);
  // The service still answers.
  const r = await post(`${s.url}/score`, { data: [2] }, auth);
  expect((await r.json()).result).toEqual([20]);
});

test('a front reads only a well-formed answer frame: exact fields, types and bounds, as many items as copies', () => {
  const answer = (index: unknown, tail = Buffer.alloc(0)) => {
    const j = Buffer.from(JSON.stringify(index));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(j.length);
    return Buffer.concat([len, j, tail]);
  };
  const item = { s: 200, t: 'application/json', n: 2, ms: 0.5 };
  expect(decodeMirrorResponse(answer({ v: 1, items: [item] }, Buffer.from('[]')), 1)).toEqual([{ ...item, body: Buffer.from('[]') }]);
  expect(decodeMirrorResponse(answer({ v: 1, items: [{ ...item, n: 0, over: true }] }), 1)).toEqual([{ ...item, n: 0, over: true }]);
  const bad = (index: unknown, why: RegExp, expected = 1) => {
    let e: unknown;
    try {
      decodeMirrorResponse(answer(index, Buffer.from('[]')), expected);
    } catch (x) {
      e = x;
    }
    expect(e).toMatchObject({ code: 'BadMirrorBatch', message: expect.stringMatching(why) });
  };
  bad({ v: 1, items: [item] }, /1 items for 2 copies/, 2);
  bad({ v: 1, items: [item], extra: 1 }, /index: an object with v and items only/);
  bad({ v: 1, items: [{ ...item, s: 1000 }] }, /items\.0\.s: an HTTP status/);
  bad({ v: 1, items: [{ ...item, ms: -1 }] }, /items\.0\.ms: a duration/);
  bad({ v: 1, items: [{ ...item, over: false }] }, /items\.0\.over: true or absent/);
  bad({ v: 1, items: [{ ...item, t: 'x'.repeat(300) }] }, /items\.0\.t: a string of at most 256/);
  bad({ v: 1, items: [{ ...item, who: 'x' }] }, /items\.0: an object with s, t, n, ms, over only/);
  bad({ v: 1, items: [{ ...item, n: 1.5 }] }, /items\.0\.n: a byte count/);
  bad({ v: 1, items: 'x' }, /items: 0 to 32 copies/);
});

test('a front mirroring to this replica sends its copies in batches; every copy is compared, the client gets the serving answers', async () => {
  const trivial = () => start({ entryScript: path.join(EX, 'node', 'trivial.js'), workers: 1, keys });
  const [serving, shadow] = await Promise.all([trivial(), trivial()]);
  const mirrorBatches = async () => {
    const text = await (await fetch(`${shadow.url}/metrics`, { headers: auth })).text();
    return Number(/^scoring_requests_total\{route="mirror",status="200"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  };
  const front = new ServiceFront('svc');
  try {
    await front.listen(0);
    front.addSlot({ name: 'blue', url: serving.url, key: keys.primaryKey });
    front.addSlot({ name: 'green', url: shadow.url, key: keys.primaryKey });
    front.setAuth({ mode: 'keys', keys });
    front.setWeights({ blue: 100, green: 0 }, { slot: 'green', percent: 100, tolerance: 0 });
    const n = 40;
    const answers = await Promise.all(Array.from({ length: n }, async (_, i) => (await post(`${front.url}/score`, { data: [i] }, auth)).json()));
    expect(answers).toEqual(Array.from({ length: n }, (_, i) => ({ data: [i] })));
    for (let i = 0; i < 500 && (front.snapshot().shadow?.green.compared ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(front.snapshot().shadow?.green).toMatchObject({ mirrored: n, compared: n, disagreed: 0, errors: 0, skipped: 0 });
    // The shadow replica took them as batches, and counted each copy as a scoring request.
    const batches = await mirrorBatches();
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(n);
    const text = await (await fetch(`${shadow.url}/metrics`, { headers: auth })).text();
    expect(Number(/^scoring_requests_total\{route="score",status="200"\} (\d+)$/m.exec(text)?.[1])).toBe(n);
  } finally {
    await front.close();
    await Promise.all([serving.server.stop(), shadow.server.stop()]);
  }
});
