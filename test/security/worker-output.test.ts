/**
 * A script's output cannot stall its service: a worker printing one 50 MB line (or 50 MB without any newline)
 * still answers its request, the service keeps serving, and the log gets the line cut with a marker
 * (runtime/lines.ts, used by runtime/pool.ts for every worker's stdout and stderr).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { capText, LineSplitter, MAX_LINE_BYTES, splitLines, truncationMarker } from '../../runtime/lines';
import { encodeFrame, FrameDecoder } from '../../runtime/protocol';
import { post, ROOT, start, SYSTEM_PYTHON, tempDir, waitFor, type Started } from '../runtime/helpers';

const BIG = 50 * 1024 * 1024;
const MARKER = truncationMarker(MAX_LINE_BYTES);

const PY = `import json, sys
def init():
    print("init done")
def run(raw_data):
    big = json.loads(raw_data).get("big")
    if big == "line":
        print("L" * ${BIG})
    elif big == "nonewline":
        sys.stderr.write("N" * ${BIG})
        sys.stderr.flush()
    print("after " + str(big))
    return {"ok": big}
`;

const JS = `'use strict';
exports.init = () => console.log('init done');
exports.run = (input) => {
  if (input.big === 'reply') return 'R'.repeat(${BIG});
  if (input.big === 'line') console.log('L'.repeat(${BIG}));
  else if (input.big === 'nonewline') process.stderr.write('N'.repeat(${BIG}));
  console.log('after ' + input.big);
  return { ok: input.big ?? null };
};
`;

describe('LineSplitter', () => {
  const split = (chunks: Array<string | Buffer>, max = 16): string[] => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l), max);
    for (const c of chunks) s.push(c);
    s.end();
    return out;
  };

  test('lines across chunk boundaries, CRLF, a last line without newline, empty lines', () => {
    expect(split(['ab', 'c\nde', 'f\r\n\nlast'])).toEqual(['abc', 'def', '', 'last']);
  });

  test('a long line is cut once with a marker; the next line is intact', () => {
    const out = split(['0123456789', '0123456789ABC', 'DEF\nnext\n'], 16);
    expect(out).toEqual([`0123456789012345${truncationMarker(16)}`, 'next']);
  });

  test('a cut never splits a UTF-8 character; characters split across chunks decode whole', () => {
    const euro = Buffer.from('€'); // 3 bytes
    expect(split([Buffer.concat([Buffer.from('abcdefghijklmn'), euro]), Buffer.from('\n')], 16)).toEqual([`abcdefghijklmn${truncationMarker(16)}`]);
    expect(split([euro.subarray(0, 1), euro.subarray(1), Buffer.from('\n')])).toEqual(['€']);
  });

  test('output without any newline is emitted (cut) as soon as it passes the bound', () => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l), 16);
    for (let i = 0; i < 1000; i++) s.push('x'.repeat(100));
    expect(out).toEqual([`${'x'.repeat(16)}${truncationMarker(16)}`]);
  });
});

describe('FrameDecoder (worker replies, front requests)', () => {
  test('frames split at every position, several per chunk, and a 50 MB frame in 64 KB chunks decode whole', () => {
    const frames = [encodeFrame({ t: 'res', id: 1 }, Buffer.from('héllo')), encodeFrame({ t: 'ready' }), encodeFrame({ t: 'res', id: 2 }, Buffer.alloc(300, 7))];
    const all = Buffer.concat(frames);
    for (let cut = 0; cut <= all.length; cut++) {
      for (const step of [1, 3, all.length]) {
        const d = new FrameDecoder<{ t: string; id?: number }>();
        const got: Array<{ header: { t: string; id?: number }; body: Buffer }> = [];
        got.push(...d.push(all.subarray(0, cut)));
        for (let i = cut; i < all.length; i += step) got.push(...d.push(all.subarray(i, Math.min(all.length, i + step))));
        expect(got.map((f) => [f.header.t, f.header.id, f.body.length])).toEqual([['res', 1, 6], ['ready', undefined, 0], ['res', 2, 300]]);
        expect(got[0].body.toString()).toBe('héllo');
      }
    }
    const big = encodeFrame({ t: 'res', id: 3 }, Buffer.alloc(BIG, 0x52));
    const d = new FrameDecoder<{ id: number }>();
    const got: Array<{ header: { id: number }; body: Buffer }> = [];
    for (let i = 0; i < big.length; i += 65536) got.push(...d.push(big.subarray(i, i + 65536)));
    expect(got).toHaveLength(1);
    expect(got[0].header.id).toBe(3);
    expect(got[0].body.length).toBe(BIG);
    expect(got[0].body.every((b) => b === 0x52)).toBe(true);
  });
});

test('an init() error of 50 MB is cut like a line: GET / and the log carry the bounded message', async () => {
  expect(capText('short')).toBe('short');
  expect(capText('€'.repeat(10), 16)).toBe(`€€€€€${truncationMarker(16)}`);
  const dir = tempDir('init-error');
  fs.writeFileSync(path.join(dir, 'score.js'), `exports.init = () => { throw new Error('E'.repeat(${BIG})); };\nexports.run = () => 1;\n`);
  const s = await start({ entryScript: path.join(dir, 'score.js') });
  try {
    expect(s.server.pool.phase).toBe('failed');
    const health = await fetch(`${s.url}/`);
    expect(health.status).toBe(503);
    const text = await health.text();
    expect(text).toContain(MARKER);
    expect(text.length).toBeLessThan(MAX_LINE_BYTES + 1024);
    const failed = s.logs.find((l) => l.event === 'worker_init_failed') as { message: string } | undefined;
    const head = 'init() failed: ';
    expect(failed?.message === `${head}${'E'.repeat(MAX_LINE_BYTES - head.length)}${MARKER}`).toBe(true);
  } finally {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test('a node worker replying 50 MB is answered (the front reads the reply linearly)', async () => {
  const dir = tempDir('reply');
  fs.writeFileSync(path.join(dir, 'score.js'), JS);
  const s = await start({ entryScript: path.join(dir, 'score.js'), timeoutMs: 30_000 });
  try {
    const r = await post(`${s.url}/score`, { big: 'reply' });
    expect(r.status).toBe(200);
    const body = Buffer.from(await r.arrayBuffer());
    expect(body.length).toBe(BIG + 2); // a JSON string
    expect((await post(`${s.url}/score`, { big: 'small' })).status).toBe(200);
  } finally {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

describe.each([
  ['python', 'score.py', PY],
  ['node', 'score.js', JS],
])('a %s worker printing 50 MB', (_runtime, file, source) => {
  let dir: string;
  let s: Started;

  beforeAll(async () => {
    dir = tempDir('output');
    fs.writeFileSync(path.join(dir, file), source);
    // scoring_timeout_ms well above what a linear reader needs, well below the old quadratic splitter's stall.
    s = await start({ entryScript: path.join(dir, file), python: SYSTEM_PYTHON, timeoutMs: 30_000 });
    expect(s.server.pool.phase).toBe('ready');
  }, 60_000);
  afterAll(async () => {
    await s?.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test.each(['line', 'nonewline'])('%s: the request is answered, the service keeps serving, the log has the cut line', async (big) => {
    const r = await post(`${s.url}/score`, { big });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: big });
    const next = await post(`${s.url}/score`, { big: 'small' });
    expect(next.status).toBe(200);
    expect(await next.json()).toEqual({ ok: 'small' });

    // The output pipes are read apart from the answer: wait for the last line printed.
    await waitFor(() => s.output.includes('1:after small'));
    const letter = big === 'line' ? 'L' : 'N';
    const cut = s.output.filter((l) => l.includes(letter.repeat(1000)));
    expect(cut).toEqual([`1:${letter.repeat(MAX_LINE_BYTES)}${MARKER}`]);
    for (const line of s.output) expect(line.length).toBeLessThanOrEqual(MAX_LINE_BYTES + MARKER.length + 4);
    // What the script printed next (on stdout) is there, whole.
    expect(s.output).toContain(`1:after ${big}`);
    expect(s.logs.filter((l) => l.event === 'worker_exit')).toEqual([]);
  }, 60_000);
});

test('the runtime CLI writes the cut line to its stderr (what the local target\'s slot log records)', async () => {
  const dir = tempDir('output-cli');
  fs.writeFileSync(path.join(dir, 'score.js'), JS);
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/runtime/cli.js'), '--entry-script', path.join(dir, 'score.js'), '--port', '0', '--no-access-log'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const stderr: string[] = [];
    splitLines(child.stderr!, (l) => stderr.push(l), 4 * MAX_LINE_BYTES);
    const url = await new Promise<string>((resolve, reject) => {
      let port = 0;
      splitLines(child.stdout!, (line) => {
        const ev = JSON.parse(line) as { event: string; port?: number; message?: string };
        if (ev.event === 'listening') port = ev.port!;
        else if (ev.event === 'ready') resolve(`http://127.0.0.1:${port}`);
        else if (ev.event === 'init_failed' || ev.event === 'error') reject(new Error(line));
      });
      child.once('exit', (code) => reject(new Error(`runtime exited (${code}): ${stderr.join('\n')}`)));
    });
    const r = await post(`${url}/score`, { big: 'line' });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: 'line' });
    expect((await post(`${url}/score`, { big: 'small' })).status).toBe(200);
    await waitFor(() => stderr.includes('[worker 1] after small'));
    expect(stderr).toContain(`[worker 1] ${'L'.repeat(MAX_LINE_BYTES)}${MARKER}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
