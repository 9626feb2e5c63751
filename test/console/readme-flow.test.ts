/**
 * The README's flow in the console, once, by a fresh user (a new browser context: no key, no storage): a model is
 * deployed through the API (multipart, as the README's curl does) while the page is open; the user watches the run
 * in the runs list and its step timeline, opens the service (slots, image and model versions, req/s after a few
 * scorings), reveals and regenerates a key, views the logs, watches a small batch run's progress bar, and deletes
 * the service. Asserts what the page shows (and checks it against the API). Real Chromium (playwright-core driving
 * Debian's /usr/bin/chromium); skipped with a printed reason when it is missing, except with CI=true.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { prepareFixture, uploadJsonl } from '../e2e/batch-helpers';
import { EXAMPLE, gatedScript } from '../helpers/gated';
import { waitRun } from '../helpers/runs';
import { chromiumSuite, launchChromium } from '../helpers/chromium';

const SERVICE = 'readme-flow';
const suite = chromiumSuite();

/** A batch entry script: a row with `gate` waits (at most 60 s) until that file exists. */
const GATED_ROWS = `'use strict';
const fs = require('fs');
function init() {}
function run(rows) {
  const out = [];
  for (const row of rows) {
    if (row.gate) for (const until = Date.now() + 60000; !fs.existsSync(row.gate) && Date.now() < until; ) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    out.push('row-' + row.id);
  }
  return out;
}
module.exports = { init, run };
`;

suite('the README flow in the console (Chromium)', () => {
  let env: TestEnvironment;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const runsQueries: string[] = [];

  beforeAll(async () => {
    env = await startTestEnvironment({ tempWorkDir: 'mdf-readme-flow-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => void d.accept());
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/runs') runsQueries.push(u.search);
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await env?.stop();
  });

  test('deploy, watch, open the service, keys, logs, a batch with its progress bar, delete', async () => {
    // A fresh user opens the console: nothing deployed yet, and the page says how to start.
    await page.goto(`${env.baseUrl}/api/console`);
    await page.waitForSelector('body[data-refreshed]');
    expect(await page.textContent('#runs-table tbody')).toMatch(/No runs yet: deploy a model/);
    expect(await page.textContent('#services-list')).toBe('No services.');
    expect(await page.isVisible('#key-form')).toBe(false); // locally no function key is asked for

    // The README's multipart deployment (manifest first, then the files); its replicas wait for a gate in init(),
    // so the run is seen Running in the page whatever the machine's speed.
    const gate = path.join(env.workDir, 'deploy-gate');
    const manifest = { ...JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8')), service: { name: SERVICE } };
    manifest.target = { ...manifest.target, auth_enabled: true };
    const form = new FormData();
    form.append('manifest', new Blob([JSON.stringify(manifest)], { type: 'application/json' }), 'deploy.json');
    for (const f of ['model.json', 'score.js', 'package.json']) form.append(f, new Blob([f === 'score.js' ? gatedScript(gate) : fs.readFileSync(path.join(EXAMPLE, f))]), f);
    const started = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form });
    expect(started.status).toBe(202);
    const runId: string = (await started.json()).runId;

    // Watch it: the row appears Running (no reload), its timeline has a running bar; then it succeeds.
    const row = `#runs-table tr[data-run-id="${runId}"]`;
    await page.waitForSelector(`${row}[data-state="Running"]`, { timeout: 120_000 });
    expect(await page.textContent(`${row} td:nth-child(5)`)).toContain(SERVICE);
    await page.click(row);
    await page.waitForSelector('#run-detail svg.timeline g.step[data-state="Running"]', { timeout: 60_000 });
    fs.writeFileSync(gate, 'open');
    await page.waitForSelector(`${row}[data-state="Succeeded"]`, { timeout: 180_000 });
    const run = await waitRun(env, runId);
    await page.waitForFunction((n) => document.querySelectorAll('#run-detail svg.timeline g.step[data-state="Succeeded"]').length === n, run.steps.length, { timeout: 30_000 });
    expect(await page.$$eval('#run-detail svg.timeline g.step', (gs) => gs.map((g) => g.getAttribute('data-step')))).toEqual(run.steps.map((s: { name: string }) => s.name));
    expect(await page.textContent('#run-detail dl')).toContain(run.result.scoringUri);
    // The row, updated when the run ended, names the versions it registered.
    await page.waitForFunction((sel) => /diabetes-linear:1/.test(document.querySelector(`${sel} td:nth-child(5)`)?.textContent ?? ''), row, { timeout: 30_000 });
    // The list was polled with changedSince (only what changed), not the whole window every time.
    expect(runsQueries[0]).toBe('?top=50');
    expect(runsQueries.slice(1).length).toBeGreaterThan(0);
    expect(runsQueries.slice(1).every((q) => /^\?top=100&changedSince=\d{4}-/.test(q))).toBe(true);

    // The service: state, slot serving the image, versions, auth, replicas.
    const card = `.service-card[data-service="${SERVICE}"]`;
    await page.waitForSelector(`${card} ul.slots li[data-role="serving"]`);
    const svc = (await env.request('GET', `/api/services/${SERVICE}`)).body;
    expect(await page.textContent(`${card} dd.state`)).toBe('Healthy');
    expect(await page.textContent(`${card} li[data-role="serving"]`)).toBe(`${svc.activeSlot}: serving ${svc.image} (100 % of traffic)`);
    expect(await page.textContent(`${card} dd.image`)).toBe('diabetes-node:1');
    expect(await page.textContent(`${card} dd.models`)).toBe('diabetes-linear:1');
    expect(await page.textContent(`${card} dd.auth`)).toBe('key');
    expect(await page.textContent(`${card} dd.replicas`)).toBe(String(svc.config.numReplicas));
    expect(await page.textContent(`${card} dd.scoring-URI`)).toBe(run.result.scoringUri);
    await page.waitForSelector(`#models-table tr[data-model="diabetes-linear:1"]`);
    await page.waitForSelector(`#images-table tr[data-image="diabetes-node:1"]`);

    // A few scorings: the service's req/s goes above zero and its chart draws.
    const keys = (await env.request('GET', `/api/services/${SERVICE}/keys`)).body;
    for (let i = 0; i < 5; i++) {
      const r = await fetch(run.result.scoringUri, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.primaryKey}` }, body: JSON.stringify(manifest.smoke_test.sample) });
      expect(r.status).toBe(200);
    }
    await page.waitForFunction((sel) => Number(document.querySelector(`${sel} .live`)?.getAttribute('data-rps') || 0) > 0, card, { timeout: 30_000 });
    await page.waitForSelector(`${card} svg.spark.rps polyline`, { state: 'attached' });
    expect(await page.textContent(`${card} .live`)).toMatch(/req\/s · errors 0\.0 % · \d+ scored/);

    // Keys: hidden until revealed; regenerating the primary one while revealed shows the new key.
    expect(await page.content()).not.toContain(keys.primaryKey);
    await page.click(`${card} button[data-action="reveal-keys"]`);
    await page.waitForSelector(`${card} code[data-key="primary"]`);
    expect(await page.textContent(`${card} code[data-key="primary"]`)).toBe(keys.primaryKey);
    await page.click(`${card} button[data-action="regenerate-primary"]`);
    await page.waitForFunction((sel) => /Primary key regenerated\./.test(document.querySelector(`${sel} .message`)?.textContent ?? ''), card);
    const after = (await env.request('GET', `/api/services/${SERVICE}/keys`)).body;
    expect(after.primaryKey).not.toBe(keys.primaryKey);
    expect(await page.textContent(`${card} code[data-key="primary"]`)).toBe(after.primaryKey);
    await page.click(`${card} button[data-action="reveal-keys"]`);
    await page.waitForSelector(`${card} code[data-key]`, { state: 'detached' });
    expect(await page.content()).not.toContain(after.primaryKey);
    const old = await fetch(run.result.scoringUri, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.primaryKey}` }, body: JSON.stringify(manifest.smoke_test.sample) });
    expect(old.status).toBe(401);

    // Logs: on the service's card, the replicas' output (their access lines), as the API has it.
    await page.click(`${card} button[data-action="show-logs"]`);
    const logPane = await page.waitForSelector(`${card} .logs pre.log`);
    expect(await logPane.textContent()).toMatch(/\[replica \d+\]/);
    const shownLines = (await logPane.textContent())!.split('\n');
    const apiLines: string[] = (await env.request('GET', `/api/services/${SERVICE}/logs?tail=1000`)).body.lines;
    expect(apiLines).toEqual(expect.arrayContaining(shownLines));
    await page.click(`${card} button[data-action="show-logs"]`);
    await page.waitForSelector(`${card} .logs pre.log`, { state: 'detached' });

    // A small batch: five mini-batches go through, the sixth waits for a gate — the bar shows 5 of 6, then 6 of 6.
    const fx = await prepareFixture(env.connectionString);
    const code = await fx.storage.ensureContainer('code');
    await code.getBlockBlobClient('scripts/gated-rows.js').upload(GATED_ROWS, Buffer.byteLength(GATED_ROWS));
    const batchGate = path.join(env.workDir, 'batch-gate');
    await uploadJsonl(fx.storage, 'readme/', [Array.from({ length: 6 }, (_, i) => ({ id: i, ...(i === 5 ? { gate: batchGate } : {}) }))]);
    const job = { name: 'readme-batch', model: 'iris-linear', entry_script: 'gated-rows.js', source_directory: 'code/scripts', inputs: { container: 'batch-data', prefix: 'readme/' }, input_kind: 'tabular', mini_batch_size: '1 rows', process_count_per_node: 2, output: { container: 'batch-output', prefix: 'readme/' } };
    const b = await env.request('POST', '/api/batch-runs', job);
    expect(b.status).toBe(202);
    const batchRow = `#runs-table tr[data-run-id="${b.body.id}"]`;
    await page.waitForSelector(batchRow, { timeout: 60_000 });
    expect(await page.textContent(`${batchRow} td:nth-child(2)`)).toBe('batch');
    await page.click(batchRow);
    const partway = await page.waitForSelector('#run-detail .batch-progress[data-total="6"][data-done="5"]', { timeout: 120_000 });
    expect(await partway.getAttribute('data-failed')).toBe('0');
    expect(await partway.textContent()).toContain('5/6 mini-batches, 0 failed');
    expect(Number(await page.getAttribute('#run-detail svg.progress rect.ok', 'width'))).toBeCloseTo(250, 0);
    expect(await page.getAttribute(batchRow, 'data-state')).toBe('Running');
    fs.writeFileSync(batchGate, 'open');
    await page.waitForSelector(`${batchRow}[data-state="Succeeded"]`, { timeout: 120_000 });
    const whole = await page.waitForSelector('#run-detail .batch-progress[data-total="6"][data-done="6"]', { timeout: 30_000 });
    expect(await whole.textContent()).toContain('6/6 mini-batches, 0 failed');
    expect(await page.textContent('#run-detail')).toContain(`batch-output/readme/${b.body.id}`);

    // Clean up: delete the service from its card; the card goes, and the API has no such service.
    await page.click(`${card} button[data-action="delete"]`);
    await page.waitForSelector(card, { state: 'detached', timeout: 60_000 });
    await page.waitForFunction(() => document.querySelector('#services-list')?.textContent === 'No services.');
    expect((await env.request('GET', `/api/services/${SERVICE}`)).status).toBe(404);
    expect(pageErrors).toEqual([]);
  }, 400_000);
});
