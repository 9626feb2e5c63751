/**
 * The web console in a real browser (playwright-core driving Debian's Chromium) against the local host with a real
 * deployment: the runs list updates while the deployment runs, the timeline shows its steps, the live figures
 * follow scoring requests, keys stay out of the page until revealed, regenerate, approve (a canary update waiting
 * for approval, with its traffic weights) and delete work through the API,
 * and tags carrying markup are shown as text (no element, no script). Skipped with a printed reason when
 * /usr/bin/chromium is missing, except with CI=true (then it fails).
 *
 * `MDF_CONSOLE_SCREENSHOT=docs/console.png` saves a screenshot of the console (README's picture).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString } from '../../shared/storage';
import { uploadExample } from '../helpers/gated';
import { waitRun } from '../helpers/runs';
import { chromiumSuite, launchChromium } from '../helpers/chromium';
import { faultsJob, prepareFixture, uploadJsonl } from '../e2e/batch-helpers';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const XSS = `<img src=x onerror="document.body.setAttribute('data-xss','img')"><script>document.body.setAttribute('data-xss','script')</script>`;
const SERVICE = 'console-svc';


const suite = chromiumSuite();

suite('web console (Chromium)', () => {
  let env: TestEnvironment;
  let browser: Browser;
  let page: Page;
  let gate: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    env = await startTestEnvironment({ tempWorkDir: 'mdf-console-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
    const storage = storageFromConnectionString(env.connectionString);
    const staging = await storage.ensureContainer('staging');
    await uploadExample(staging, 'console');
    // The same model whose init() waits until the test opens a gate: a deployment stays Running until the test has
    // seen it so in the page, whatever the machine's speed.
    gate = path.join(env.workDir, 'gate');
    await uploadExample(staging, 'gated', gate);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => void d.accept());
  }, 180_000);

  /** The console in the shared page (each test can run alone). */
  async function openConsole(): Promise<void> {
    if (page.url().startsWith(`${env.baseUrl}/api/console`)) return;
    await page.goto(`${env.baseUrl}/api/console`);
    await page.waitForSelector('body[data-refreshed]');
  }

  afterAll(async () => {
    await browser?.close();
    await env?.stop();
  });

  test('a deployment live in the console: runs list, timeline, figures, keys, XSS probe, regenerate, delete', async () => {
    await openConsole();

    // The deployment starts while the page is open; its tags carry markup.
    const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
    manifest.model.tags = { ...manifest.model.tags, probe: XSS };
    manifest.model.description = XSS;
    manifest.service = { name: SERVICE, tags: { probe: XSS } };
    // Key auth (the figures are read with the service's key) and two replicas (the figures are their sum).
    manifest.target = { ...manifest.target, auth_enabled: true, num_replicas: 2 };
    const started = await env.request('POST', '/api/deployments?folder=staging/gated', manifest, { 'content-type': 'application/json' });
    expect(started.status).toBe(202);
    const runId: string = started.body.runId;
    const row = (state: string) => `#runs-table tr[data-run-id="${runId}"][data-state="${state}"]`;

    // The list shows the run while it runs, then its end — without reloading the page.
    await page.waitForSelector(row('Running'), { timeout: 120_000 });
    fs.writeFileSync(gate, 'open'); // the replicas finish init(): the run goes on
    await page.click(`#runs-table tr[data-run-id="${runId}"]`);
    await page.waitForSelector(row('Succeeded'), { timeout: 180_000 });
    const run = await waitRun(env, runId);
    expect(run.state).toBe('Succeeded');

    // The timeline: one bar per step, coloured by outcome.
    await page.waitForFunction((n) => document.querySelectorAll('#run-detail svg.timeline g.step[data-state="Succeeded"]').length === n, run.steps.length, { timeout: 30_000 });
    const steps = await page.$$eval('#run-detail svg.timeline g.step', (gs) => gs.map((g) => `${g.getAttribute('data-step')}:${g.getAttribute('data-state')}:${g.querySelector('rect')?.getAttribute('width')}`));
    expect(steps.map((s) => s.split(':').slice(0, 2).join(':'))).toEqual(run.steps.map((s: any) => `${s.name}:${s.state}`));
    for (const s of steps) expect(Number(s.split(':')[2])).toBeGreaterThan(0);
    const barColour = await page.$eval('#run-detail g.step-Succeeded rect', (r) => getComputedStyle(r).fill);
    expect(barColour).toBe('rgb(46, 125, 50)');
    // The service's log tail (GET /api/services/{name}/logs) under the run.
    const logs = await page.waitForSelector('#run-detail .logs pre.log', { timeout: 30_000 });
    expect(await logs.textContent()).toMatch(/\[replica \d+\]/);

    // Models, images and services: the markup in tags and descriptions is text, never elements or script.
    const card = `.service-card[data-service="${SERVICE}"]`;
    await page.waitForSelector(card);
    await page.waitForSelector(`#models-table tr[data-model="${run.result.model}"]`);
    await page.waitForSelector(`#images-table tr[data-image="${run.result.image}"]`);
    const modelRow = await page.textContent(`#models-table tr[data-model="${run.result.model}"]`);
    expect(modelRow).toContain(`probe=${XSS}`);
    expect(await page.textContent(card)).toContain(`probe=${XSS}`);
    expect(await page.$$('img, main script, iframe, object, embed')).toHaveLength(0);
    expect(await page.getAttribute('body', 'data-xss')).toBeNull();

    // Live figures: scoring requests show up in the service's counters and its req/s chart.
    const keys = (await env.request('GET', `/api/services/${SERVICE}/keys`)).body;
    const score = (x: number) => fetch(run.result.scoringUri, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.primaryKey}` }, body: JSON.stringify({ data: [[x, 0, 0, 0, 0, 0, 0, 0, 0, 0]] }) });
    for (let i = 0; i < 5; i++) {
      const r = await score(0);
      expect(r.status).toBe(200);
    }
    await page.waitForFunction((sel) => Number(document.querySelector(`${sel} .live`)?.getAttribute('data-requests') ?? -1) >= 6, card, { timeout: 30_000 }); // 5 + the smoke test
    await page.waitForSelector(`${card} svg.spark.rps polyline`, { state: 'attached', timeout: 30_000 });
    await page.waitForSelector(`${card} svg.spark.latency circle.dot`, { timeout: 30_000 });
    expect(await page.textContent(`${card} svg.spark.latency title`)).toMatch(/^latency: \d+\.\d\d ms$/);
    const direct = await env.request('GET', `/api/services/${SERVICE}/metrics`);
    expect(direct.status).toBe(200);
    expect(direct.body.score.requests).toBeGreaterThanOrEqual(6);

    if (process.env.MDF_CONSOLE_SCREENSHOT) {
      // A picture with some history in the charts: a few seconds of uneven traffic (bounded: 12 rounds).
      for (let i = 0; i < 12; i++) {
        await Promise.all(Array.from({ length: 1 + ((i * 7) % 5) }, () => score(0.01 * i).then((r) => r.arrayBuffer())));
        await new Promise((r) => setTimeout(r, 700));
      }
      await page.click(`#runs-table tr[data-run-id="${runId}"]`);
      await page.waitForSelector('#run-detail svg.timeline');
      await page.screenshot({ path: path.resolve(__dirname, '../..', process.env.MDF_CONSOLE_SCREENSHOT), fullPage: true });
    }

    // Keys: not in the page until revealed; then exactly the API's.
    expect(await page.content()).not.toContain(keys.primaryKey);
    expect(await page.content()).not.toContain(keys.secondaryKey);
    await page.click(`${card} button[data-action="reveal-keys"]`);
    await page.waitForSelector(`${card} code[data-key="primary"]`);
    expect(await page.textContent(`${card} code[data-key="primary"]`)).toBe(keys.primaryKey);
    await page.click(`${card} button[data-action="reveal-keys"]`); // hide
    await page.waitForSelector(`${card} code[data-key="primary"]`, { state: 'detached' });
    expect(await page.content()).not.toContain(keys.primaryKey);

    // Regenerate the primary key from the console: the API has a new one, the page still shows none.
    await page.click(`${card} button[data-action="regenerate-primary"]`);
    await page.waitForFunction((sel) => /Primary key regenerated/.test(document.querySelector(`${sel} .message`)?.textContent ?? ''), card);
    const after = (await env.request('GET', `/api/services/${SERVICE}/keys`)).body;
    expect(after.primaryKey).not.toBe(keys.primaryKey);
    expect(after.secondaryKey).toBe(keys.secondaryKey);
    expect(await page.content()).not.toContain(after.primaryKey);

    // An update with a rollout that waits for an approval: the console shows the weights and Approve; approving
    // from the page lets the run finish (POST /api/runs/{id}/approve on the real rollout).
    const canary = { ...manifest, rollout: { strategy: 'canary', steps: [50, 100], bake_seconds: 1, approval: { before_percent: 100 }, gates: { min_requests: 1, max_wait_seconds: 0, on_insufficient_traffic: 'promote' } } };
    const update = await env.request('POST', '/api/deployments?folder=staging/console', canary, { 'content-type': 'application/json' });
    expect(update.status).toBe(202);
    const updateId: string = update.body.runId;
    await page.waitForSelector(`#runs-table tr[data-run-id="${updateId}"]`, { timeout: 60_000 });
    await page.click(`#runs-table tr[data-run-id="${updateId}"]`);
    const approve = await page.waitForSelector('#run-detail button[data-action="approve"]', { timeout: 120_000 });
    expect(await page.textContent('#run-detail .rollout')).toContain('awaitingApproval');
    await page.waitForFunction((sel) => /50 %/.test(document.querySelector(`${sel} dd.traffic`)?.textContent ?? ''), card, { timeout: 30_000 });
    await approve.click();
    await page.waitForSelector(`#runs-table tr[data-run-id="${updateId}"][data-state="Succeeded"]`, { timeout: 120_000 });
    const updated = await waitRun(env, updateId);
    expect(updated).toMatchObject({ state: 'Succeeded', result: { outcome: 'Updated', rollout: { approval: { decision: 'approved' } } } });
    expect(updated.steps.map((s: any) => s.name)).toContain('rollout');
    await page.waitForSelector('#run-detail svg.timeline g.step[data-step="rollout"][data-state="Succeeded"]', { timeout: 30_000 });

    // Delete from the console: the card goes, the API has no such service.
    await page.click(`${card} button[data-action="delete"]`);
    await page.waitForSelector(card, { state: 'detached', timeout: 60_000 });
    expect((await env.request('GET', `/api/services/${SERVICE}`)).status).toBe(404);

    expect(await page.getAttribute('body', 'data-xss')).toBeNull();
    expect(pageErrors).toEqual([]);
  }, 400_000);

  test('a failed deployment: its failed step in red, its error and the slot\'s log tail', async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
    await openConsole();
    const bad = { ...manifest, service: { name: 'console-bad' }, smoke_test: { ...manifest.smoke_test, expected_output: [1, 2] } };
    const r = await env.request('POST', '/api/deployments?folder=staging/console', bad, { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
    const run = await waitRun(env, r.body.runId);
    expect(run.error.code).toBe('SmokeTestFailed');
    const row = `#runs-table tr[data-run-id="${run.id}"][data-state="${run.state}"]`;
    await page.waitForSelector(row, { timeout: 30_000 });
    await page.click(row);
    await page.waitForSelector('#run-detail svg.timeline g.step[data-step="smokeTest"][data-state="Failed"]');
    expect(await page.$eval('#run-detail g.step-Failed rect', (e) => getComputedStyle(e).fill)).toBe('rgb(198, 40, 40)');
    expect(await page.textContent('#run-detail .error strong')).toBe('SmokeTestFailed');
    expect(await page.textContent('#run-detail .error pre.log')).toBe(run.error.message);
    expect(run.error.message).toContain('Last log lines of slot');
    await env.request('DELETE', '/api/services/console-bad?force=true');
  }, 200_000);

  test('Azure auth: a 401 asks for the function key; it is sent as x-functions-key and kept out of the page', async () => {
    // The local host checks no keys (as Core Tools): the Functions front end's 401 is played by the browser's router.
    const p = await browser.newPage();
    const sent: string[] = [];
    let refuse = true;
    await p.route('**/api/runs?*', (route) => (refuse ? route.fulfill({ status: 401, contentType: 'application/json', body: '' }) : route.continue()));
    p.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/api/') && !r.url().includes('/api/console')) sent.push(r.headers()['x-functions-key'] ?? '');
    });
    await p.goto(`${env.baseUrl}/api/console`);
    await p.waitForSelector('#key-form:not([hidden])');
    expect(await p.textContent('#status')).toMatch(/function key/);
    expect(sent.every((k) => k === '')).toBe(true);
    refuse = false;
    const KEY = 'test-function-key-0123456789';
    await p.fill('#key-input', KEY);
    await p.click('#key-form button[type="submit"]');
    await p.waitForSelector('#key-form', { state: 'hidden' });
    await p.waitForFunction(() => /updated/.test(document.querySelector('#status')?.textContent ?? ''));
    expect(sent.filter((k) => k === KEY).length).toBeGreaterThan(0);
    expect(await p.inputValue('#key-input')).toBe('');
    expect(await p.content()).not.toContain(KEY);
    expect(await p.evaluate(() => sessionStorage.getItem('mdf.functionKey'))).toBe(KEY);
    await p.click('#key-button');
    await p.click('#key-forget');
    expect(await p.evaluate(() => sessionStorage.getItem('mdf.functionKey'))).toBeNull();
    await p.close();
  }, 60_000);

  test('a rollout waiting for approval shows Approve/Reject; other runs do not', async () => {
    // Approving runs for real in the deployment test above; here the reject path (with its reason) and the buttons'
    // absence outside an approval wait, with the run views played by the browser's router and the decision captured.
    const p = await browser.newPage();
    const id = 'deploy-http-rollout-probe';
    const decisions: Array<{ url: string; body: string | null }> = [];
    const steps = [{ name: 'register', state: 'Succeeded', startedTime: '2026-01-01T00:00:00Z', endedTime: '2026-01-01T00:00:01Z' }];
    await p.route('**/api/runs?*', (route) => route.fulfill({ json: { value: [{ id, type: 'deployment', state: 'Running', createdTime: '2026-01-01T00:00:00Z', serviceName: 'canary-svc' }] } }));
    await p.route(`**/api/runs/${id}`, (route) => route.fulfill({ json: { id, state: 'Running', steps, rollout: { phase: 'awaitingApproval', weight: 10 } } }));
    await p.route(`**/api/runs/${id}/*`, (route) => {
      decisions.push({ url: new URL(route.request().url()).pathname, body: route.request().postData() });
      return route.fulfill({ status: 202, json: { id } });
    });
    p.on('dialog', (d) => void d.accept('error rate too high'));
    await p.goto(`${env.baseUrl}/api/console`);
    await p.click(`#runs-table tr[data-run-id="${id}"]`);
    await p.waitForSelector('#run-detail button[data-action="approve"]');
    expect(await p.textContent('#run-detail .rollout')).toContain('awaitingApproval, new version at 10 %');
    await p.click('#run-detail button[data-action="reject"]');
    for (let i = 0; i < 300 && !decisions.length; i++) await p.waitForTimeout(100);
    expect(decisions).toEqual([{ url: `/api/runs/${id}/reject`, body: JSON.stringify({ reason: 'error rate too high' }) }]);
    // The same run without a pending approval: no buttons.
    await p.route(`**/api/runs/${id}`, (route) => route.fulfill({ json: { id, state: 'Running', steps, rollout: { phase: 'baking', weight: 10 } } }));
    await p.waitForFunction(() => /baking/.test(document.querySelector('#run-detail .rollout')?.textContent ?? ''));
    expect(await p.$$('#run-detail button[data-action]')).toHaveLength(0);
    await p.close();
  }, 60_000);

  test('a batch run: progress bar with its failed mini-batch', async () => {
    await openConsole();
    const fx = await prepareFixture(env.connectionString);
    // 10 rows in mini-batches of 2: rows 0, 3, 6, 9 are left out of run()'s result, row 5 makes its mini-batch fail.
    const rows = Array.from({ length: 10 }, (_, i) => ({ id: i, ...(i % 3 === 0 ? { drop: true } : {}), ...(i === 5 ? { fail: true } : {}) }));
    await uploadJsonl(fx.storage, 'console/', [rows]);
    const r = await env.request('POST', '/api/batch-runs', faultsJob('console/', { mini_batch_size: '2 rows', error_threshold: -1, allowed_failed_count: -1, run_max_try: 1 }));
    expect(r.status).toBe(202);
    const id: string = r.body.id;
    const row = `#runs-table tr[data-run-id="${id}"]`;
    await page.waitForSelector(row, { timeout: 60_000 });
    expect(await page.textContent(`${row} td:nth-child(2)`)).toBe('batch');
    await page.waitForSelector(`${row}[data-state="Succeeded"]`, { timeout: 120_000 });
    await page.click(row);
    const bar = await page.waitForSelector(`#run-detail .batch-progress[data-total="5"][data-done="5"]`, { timeout: 30_000 });
    expect(await bar.getAttribute('data-failed')).toBe('1');
    expect(await bar.getAttribute('data-partial')).toBe('4');
    expect(await bar.textContent()).toContain('5/5 mini-batches, 1 failed, 4 partial');
    expect(await page.$$('#run-detail svg.progress rect.failed')).toHaveLength(1);
    expect(Number(await page.getAttribute('#run-detail svg.progress rect.failed', 'width'))).toBeGreaterThan(0);
    expect(await page.textContent('#run-detail')).toMatch(/1 failed/);
    expect(pageErrors).toEqual([]);
  }, 200_000);
});
