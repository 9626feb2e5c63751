/**
 * Bad input against the console's routes and the routes it reads, through the local host (no browser): only the
 * console's own files are served, with a strict CSP, whatever the path; `GET /api/runs` checks its query before
 * use; `GET /api/services/{name}/metrics` checks the name and refuses a service that does not serve; the metrics
 * parser is bounded before it runs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { MAX_METRICS_BYTES, parsePrometheusText, summarizeMetrics } from '../../shared/scoring/metrics';

let env: TestEnvironment;

beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

test('the page and its assets come with a strict CSP; only the console files are served', async () => {
  const res = await fetch(`${env.baseUrl}/api/console`);
  expect(res.status).toBe(200);
  const csp = res.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("default-src 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toContain('unsafe-eval');
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  const html = await res.text();
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
  expect(html).not.toMatch(/\son[a-z]+=/i); // no inline handler
  expect(html).toContain('src="/api/console/app.js"');
  for (const asset of ['app.js', 'api.js', 'charts.js']) {
    const js = await fetch(`${env.baseUrl}/api/console/${asset}`);
    expect([asset, js.status, js.headers.get('content-type')]).toEqual([asset, 200, 'text/javascript; charset=utf-8']);
    expect(js.headers.get('content-security-policy')).toBe(csp);
    const text = await js.text();
    expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  }
  const css = await fetch(`${env.baseUrl}/api/console/console.css`);
  expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
});

test('paths outside the console\'s file list are 404, encoded or not', async () => {
  const paths = [
    '/api/console/..%2Fpackage.json',
    '/api/console/%2e%2e/host.json',
    '/api/console/%2e%2e%2f%2e%2e%2fpackage.json',
    '/api/console/..%5Chost.json',
    '/api/console/index.html',
    '/api/console/app.js.map',
    '/api/console/APP.JS',
    '/api/console/app.js%00.css',
    '/api/console/constructor',
    '/api/console/__proto__',
    '/api/console/sub/app.js',
  ];
  for (const p of paths) {
    const r = await fetch(`${env.baseUrl}${p}`);
    const body = await r.text();
    expect([p, r.status]).toEqual([p, 404]);
    expect(body).not.toContain('"version"');
    expect(body).not.toContain('durableTask');
    // Answered by the console (AssetNotFound, with its headers) or refused by the host before any function ran.
    const code = (JSON.parse(body) as { error: { code: string } }).error.code;
    if (code === 'AssetNotFound') expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    else expect([p, code]).toEqual([p, expect.stringMatching(/^(NotFound|InvalidPath|RouteNotFound)$/)]);
  }
});

test('GET /api/runs checks its query before use', async () => {
  const ok = await env.request('GET', '/api/runs');
  expect(ok.status).toBe(200);
  expect(ok.body).toEqual({ value: [], asOf: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/) });
  const cases: Array<[string, string]> = [
    ['top=0', 'InvalidTop'],
    ['top=101', 'InvalidTop'],
    ['top=1e3', 'InvalidTop'],
    ['type=cron', 'InvalidRunType'],
    ['status=Exploded', 'InvalidRunStatus'],
    ['since=yesterday', 'InvalidSince'],
    ['changedSince=yesterday', 'InvalidChangedSince'],
    [`changedSince=2026-11-20T10:00:00Z${'0'.repeat(40)}`, 'InvalidChangedSince'],
    ['continuationToken=not%20a%20token', 'InvalidContinuationToken'],
    [`continuationToken=${'A'.repeat(600)}`, 'InvalidContinuationToken'],
    ['service=Bad_Name', 'InvalidServiceName'],
  ];
  for (const [q, code] of cases) {
    const r = await env.request('GET', `/api/runs?${q}`);
    expect([q, r.status, r.body?.error?.code]).toEqual([q, 400, code]);
  }
});

test('GET /api/services/{name}/metrics: unknown and invalid names, before anything is read', async () => {
  expect((await env.request('GET', '/api/services/no-such-svc/metrics')).body.error.code).toBe('ServiceNotFound');
  const bad = await env.request('GET', '/api/services/Bad_Name/metrics');
  expect(bad.status).toBe(400);
  expect(bad.body.error.code).toBe('InvalidServiceName');
});

test('the metrics parser is bounded and sums series; malformed lines are skipped', () => {
  expect(() => parsePrometheusText('x 1\n'.repeat(Math.ceil(MAX_METRICS_BYTES / 4) + 1))).toThrow(expect.objectContaining({ code: 'MetricsTooLarge' }));
  expect(() => parsePrometheusText('\n'.repeat(20_001))).toThrow(expect.objectContaining({ code: 'MetricsTooLarge' }));
  const text = [
    '# HELP scoring_requests_total x',
    'scoring_requests_total{route="score",status="200"} 7',
    'scoring_requests_total{route="score",status="500"} 2',
    'scoring_requests_total{route="score",status="413"} 1',
    'scoring_requests_total{route="health",status="200"} 4',
    'scoring_request_duration_seconds_sum{route="score"} 0.5',
    'scoring_request_duration_seconds_count{route="score"} 10',
    'scoring_workers 2',
    'garbage line without value',
    'scoring_workers_ready NaN-ish',
    'scoring_inflight_requests{route="a\\"b"} 3',
  ].join('\n');
  const m = summarizeMetrics('svc', parsePrometheusText(text), new Date('2026-01-01T00:00:00Z'), 'blue');
  expect(m).toMatchObject({ service: 'svc', slot: 'blue', sampledTime: '2026-01-01T00:00:00.000Z', requestsTotal: 14, workers: 2, workersReady: 0, inflight: 3 });
  expect(m.score).toEqual({ requests: 10, serverErrors: 2, clientErrors: 1, durationSecondsSum: 0.5, durationCount: 10 });
});

test('the console\'s files ship in the Azure package (.funcignore leaves them in)', () => {
  const root = path.resolve(__dirname, '../..');
  const patterns = fs.readFileSync(path.join(root, '.funcignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
  for (const f of ['index.html', 'app.js', 'api.js', 'charts.js', 'console.css']) {
    expect(fs.existsSync(path.join(root, 'console', f))).toBe(true);
    const rel = `console/${f}`;
    const excluded = patterns.filter((p) => {
      const re = new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`);
      return re.test(rel) || re.test(f) || re.test('console');
    });
    expect([rel, excluded]).toEqual([rel, []]);
  }
});
