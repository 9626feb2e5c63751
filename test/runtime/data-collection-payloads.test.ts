/**
 * How model data collection records request and response bodies (runtime/collector.ts, runtime/json-bytes.ts):
 * bodies are checked to be JSON in place and copied into the record as they are, so the check must agree with
 * `JSON.parse` exactly (a differential check over hand-picked and generated texts), and every kind of body a client
 * or a raw script sends must come out as one valid JSON line with the same value: JSON (also across line breaks and
 * with non-ASCII text), JSON-looking text that is not JSON, text, bytes, bytes that are not UTF-8, nesting deeper than
 * the check follows, empty and oversized bodies.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CollectorSink } from '../../runtime/collector';
import { jsonBytes, JSON_NON_ASCII, JSON_RAW_LINE_BREAK } from '../../runtime/json-bytes';
import { start, tempDir } from './helpers';

const parses = (s: string): boolean => {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
};

const VALID = ['0', '-0', '1.5e+10', '-12.25E-3', '"a\\u00e9\\n\\/"', '{"a":[1,{"b":null}]}', ' [ ] ', '{}', '"é"', '[true,false,null]', '\r\n{ "a" :\t1 }\n', '""', '[[[]]]', '{"":""}', '1E5', '"\\\\"'];
const INVALID = ['', ' ', '01', '1.', '.5', '+1', '[1,]', '{"a":1,}', '{a:1}', "'a'", '"a', '"\\x"', '"\\u12"', '"\\u12g4"', '[1 2]', '{"a" 1}', 'tru', 'nulll', '1 2', '"a\tb"', 'NaN', 'Infinity', '[', ']', '{"a":}', '-', '1e', '1e+', '[1]]', '{"a":1}}', '"\u0001"', '{,}', '[,1]', '{"a":1 "b":2}', '-01', '0x10', '{"a"}', '[1,,2]', '"\\"', 'true false'];

test('the in-place JSON check agrees with JSON.parse (hand-picked, generated and mutated texts) and flags raw line breaks and non-ASCII', () => {
  for (const s of VALID) expect([s, jsonBytes(Buffer.from(s)) >= 0]).toEqual([s, true]);
  for (const s of INVALID) expect([s, jsonBytes(Buffer.from(s))]).toEqual([s, -1]);
  // Generated: random texts over JSON's own characters, and single-character mutations of valid documents.
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '1', '9', '-', '+', '.', 'e', 'E', ' ', '\n', 't', 'r', 'f', 'a', 'l', 's', 'n', 'x', 'é'];
  const docs = ['{"a":[1,2.5,-3e2,{"b":"c\\"d"}],"e":true,"f":null}', '[[1],[2,[3,{"x":"\\u0041"}]]]', '"plain"', '123.456e-7'];
  let agreed = 0;
  for (let k = 0; k < 20_000; k++) {
    let s: string;
    if (k % 2) s = Array.from({ length: 1 + rand(12) }, () => alphabet[rand(alphabet.length)]).join('');
    else {
      const d = docs[rand(docs.length)];
      const at = rand(d.length + 1);
      const op = rand(3);
      s = op === 0 ? d.slice(0, at) + d.slice(at + 1) : op === 1 ? d.slice(0, at) + alphabet[rand(alphabet.length)] + d.slice(at) : d.slice(0, at) + alphabet[rand(alphabet.length)] + d.slice(at + 1);
    }
    expect([s, jsonBytes(Buffer.from(s)) >= 0]).toEqual([s, parses(s)]);
    agreed++;
  }
  expect(agreed).toBe(20_000);
  expect(jsonBytes(Buffer.from('{"a":\n1}'))).toBe(JSON_RAW_LINE_BREAK);
  expect(jsonBytes(Buffer.from('"line\\nbreak"'))).toBe(0);
  expect(jsonBytes(Buffer.from('["é"]'))).toBe(JSON_NON_ASCII);
  // Nesting beyond the bound is "not JSON" (kept as a string by the collector), never a stack overflow.
  expect(jsonBytes(Buffer.from('['.repeat(1001) + ']'.repeat(1001)))).toBe(-1);
  expect(jsonBytes(Buffer.from('['.repeat(1000) + ']'.repeat(1000)))).toBe(0);
  expect(jsonBytes(Buffer.from('['.repeat(200_000)))).toBe(-1);
});

// A raw script that answers what the request asks for: the request body back with a content type of its choosing.
const ECHO = `'use strict';
module.exports = {
  raw: true,
  run(req) {
    const type = req.headers['x-answer-type'];
    if (!type) return { status: 200, body: { ok: true } };
    return { status: 201, body: req.body, headers: { 'content-type': type } };
  },
};
`;

test('every kind of body is recorded as one JSON line with its value: JSON as it is (also across line breaks), text as a string, bytes as base64', async () => {
  const dir = tempDir('mdc-payload');
  try {
    const modelDir = path.join(dir, 'models', 'm', '1');
    fs.mkdirSync(modelDir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'score.js'), ECHO);
    const blobs = new Map<string, Buffer>();
    const sink: CollectorSink = { describe: 'memory', async upload(name, data) { blobs.set(name, Buffer.from(data)); } };
    const s = await start({ entryScript: path.join(dir, 'score.js'), modelDir, serviceName: 'svc', collectModelData: true, collectorSink: sink, maxBodyBytes: 4 * 1024 * 1024 });
    const deep = '['.repeat(1500) + ']'.repeat(1500);
    const notUtf8 = Buffer.concat([Buffer.from('{"k":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const cases: Array<{ body: Buffer | string; type: string; input: unknown }> = [
      { body: '{"data":[[1,2],[3,4]]}', type: 'application/json', input: { data: [[1, 2], [3, 4]] } },
      { body: '{\n  "data": [1,\r\n 2],\n  "s": "a\\nb é"\n}\n', type: 'application/json; charset=utf-8', input: { data: [1, 2], s: 'a\nb é' } },
      { body: '{"data": [1, 2', type: 'application/json', input: '{"data": [1, 2' },
      { body: 'NaN', type: 'application/json', input: 'NaN' },
      { body: '[1,\n2]', type: 'text/plain', input: '[1,\n2]' },
      { body: '42', type: 'text/plain', input: 42 },
      { body: 'hello "world"\n', type: 'text/plain; charset=utf-8', input: 'hello "world"\n' },
      { body: Buffer.from([0, 1, 2, 0x0a, 0xff]), type: 'application/octet-stream', input: { base64: Buffer.from([0, 1, 2, 0x0a, 0xff]).toString('base64') } },
      { body: notUtf8, type: 'application/json', input: { k: notUtf8.subarray(6, 8).toString('utf8') } },
      { body: deep, type: 'application/json', input: deep },
      { body: '', type: 'application/json', input: null },
      { body: JSON.stringify({ data: 'y'.repeat(1024 * 1024 + 10) }), type: 'application/json', input: { truncated: true, bytes: 1024 * 1024 + 21 } },
    ];
    const ids: string[] = [];
    for (const c of cases) {
      const res = await fetch(`${s.url}/score`, { method: 'POST', headers: { 'content-type': c.type, 'x-answer-type': c.type }, body: typeof c.body === 'string' ? c.body : new Uint8Array(c.body) });
      expect(res.status).toBe(201);
      await res.arrayBuffer();
      ids.push(res.headers.get('x-ms-request-id')!);
    }
    await s.server.stop();

    const text = Buffer.concat([...blobs.values()]).toString('utf8');
    const lines = text.split('\n').filter(Boolean);
    expect(lines).toHaveLength(cases.length);
    const records = new Map(lines.map((l) => JSON.parse(l)).map((r) => [r.requestId as string, r]));
    cases.forEach((c, i) => {
      const r = records.get(ids[i]);
      expect([i, r?.status, r?.input]).toEqual([i, 201, c.input]);
      // The answer is the same body with the same type: recorded the same way.
      expect([i, r?.output]).toEqual([i, c.input]);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
