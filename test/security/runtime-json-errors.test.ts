/**
 * @jest-environment ./test/runtime/onnx-environment.js
 *
 * A scoring request whose body is not JSON gets 400 `InvalidInput` naming the problem, never a quote of the body:
 * V8's message quotes the text around the error (`Unexpected token 's', ..."mary_key": supersecre"... is not valid
 * JSON`), and a body may carry a key the caller pasted by mistake, which would then sit in proxies' and clients' logs.
 * Covered: a script's `/score`, its Open Inference Protocol route, and an ONNX model's `/score` (runtime/handler.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linearOnnx } from '../../examples/runtime/onnx-model';
import { jsonSyntaxMessage } from '../../runtime';
import { EX, start, tempDir, type Started } from '../runtime/helpers';

const SECRET = 'supersecretkey0123456789';
const BODIES = [`{"primary_key": ${SECRET}}`, `{"data": [[1, 2]]} ${SECRET}`, `${SECRET}`, `{"inputs": "${SECRET}`];

let script: Started;
let onnx: Started;

beforeAll(async () => {
  const dir = tempDir('json-errors');
  fs.mkdirSync(path.join(dir, 'linear'));
  fs.writeFileSync(path.join(dir, 'linear', 'model.onnx'), linearOnnx());
  [script, onnx] = await Promise.all([start({ entryScript: path.join(EX, 'node/trivial.js'), workers: 1 }), start({ modelDir: path.join(dir, 'linear'), workers: 1 })]);
}, 60_000);

afterAll(async () => {
  await Promise.all([script?.server.stop(), onnx?.server.stop()]);
});

async function expectRefusedWithoutQuote(url: string, body: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const text = await res.text();
  expect({ url, body, status: res.status }).toEqual({ url, body, status: 400 });
  expect(text).not.toMatch(/supersecre|secretkey|0123456789/);
  expect(text).toMatch(/not valid JSON/);
}

test("a script's /score and /v2 infer refuse a malformed body without quoting it", async () => {
  for (const body of BODIES) {
    await expectRefusedWithoutQuote(`${script.url}/score`, body);
    await expectRefusedWithoutQuote(`${script.url}/v2/models/scoring-service/infer`, body);
  }
  const res = await fetch(`${script.url}/score`, { method: 'POST', body: '{"data": [[1, 2]]}', headers: { 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
}, 60_000);

test("an ONNX model's /score refuses a malformed body without quoting it", async () => {
  for (const body of BODIES) await expectRefusedWithoutQuote(`${onnx.url}/score`, body);
}, 60_000);

test('the message keeps what is wrong and where, and drops every quote', () => {
  const messageOf = (text: string) => {
    try {
      JSON.parse(text);
    } catch (e) {
      return jsonSyntaxMessage(e);
    }
    throw new Error(`parsed: ${text}`);
  };
  for (const body of BODIES) expect(messageOf(body)).not.toMatch(/supersecre|secretkey|0123456789/);
  expect(messageOf('{"a": 1,')).toMatch(/JSON|position|end/i);
  expect(jsonSyntaxMessage('plain "quoted secret')).toBe('plain (the text is not shown)');
});
