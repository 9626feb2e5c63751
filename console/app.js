// The web console: runs (live), a run's step timeline, services with live figures and actions, models, images.
// Built on the management API only (api.js). Every value from the API is inserted as text (textContent,
// setAttribute), never as markup; keys are fetched and put into the page only when the user clicks "Reveal keys".
import { api, ApiError, functionKey, seg, setFunctionKey } from './api.js';
import { progressBar, sparkline, stepTimeline } from './charts.js';

const POLL_MS = 2000;
const SAMPLES = 30;
/** Runs shown in the list (the newest). */
const RUNS_SHOWN = 50;
/** Lines of a service's log shown on its card. */
const LOG_LINES = 100;

/** An element with attributes and children; strings become text nodes. `on*` props are listeners. */
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') e.className = String(v);
    else e.setAttribute(k, String(v));
  }
  append(e, children);
  return e;
}

function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const $ = (sel) => document.querySelector(sel);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const chips = (map) => el('span', { class: 'chips' }, Object.entries(map || {}).map(([k, v]) => el('span', { class: 'chip' }, `${k}=${v}`)));

function setStatus(message, kind = '') {
  const s = $('#status');
  s.textContent = message;
  s.className = kind;
}

// ---------------------------------------------------------------- function key (Azure)

function showKeyForm(show) {
  $('#key-form').hidden = !show;
  $('#key-button').hidden = show && !functionKey();
}

function initKeyForm() {
  $('#key-button').hidden = !functionKey();
  $('#key-button').addEventListener('click', () => showKeyForm($('#key-form').hidden));
  $('#key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('#key-input');
    setFunctionKey(input.value.trim());
    input.value = '';
    showKeyForm(false);
    $('#key-button').hidden = !functionKey();
    void refresh();
  });
  $('#key-forget').addEventListener('click', () => {
    setFunctionKey('');
    $('#key-button').hidden = true;
    setStatus('Function key forgotten.');
  });
}

/** An API failure shown to the user; a 401 asks for the function key. */
function report(e, what) {
  if (e instanceof ApiError && e.status === 401) {
    showKeyForm(true);
    setStatus('The management API needs a function key (Azure): enter it above.', 'error');
    return;
  }
  setStatus(`${what}: ${e instanceof ApiError ? `${e.code}: ${e.message}` : e.message}`, 'error');
}

// ---------------------------------------------------------------- runs

let selectedRun = null;
let detailFor = null;
const logsRoute = { known: true };

/**
 * The runs shown, newest first, and the `asOf` of the answer they came from. The first read lists the newest runs;
 * every later poll asks only for what changed since (`?changedSince=<asOf>`: runs created since, runs not ended —
 * a few, not the whole 30-day window), merges it by id, and reads once by id each run that was running and is no
 * longer among the running ones (it has ended since).
 */
let runs = { list: [], asOf: null };

const isRunning = (r) => r.state === 'Running' || r.state === 'Pending';
const newestFirst = (a, b) => (b.createdTime || '').localeCompare(a.createdTime || '') || b.id.localeCompare(a.id);

async function refreshRuns() {
  if (!runs.asOf) {
    const r = await api('GET', `/runs?top=${RUNS_SHOWN}`);
    runs = { list: r.value, asOf: r.asOf || null };
    renderRuns(runs.list);
    return;
  }
  const r = await api('GET', `/runs?top=100&changedSince=${encodeURIComponent(runs.asOf)}`);
  const byId = new Map(runs.list.map((x) => [x.id, x]));
  const changed = new Set(r.value.map((x) => x.id));
  for (const x of r.value) byId.set(x.id, x);
  const ended = [...byId.values()].filter((x) => isRunning(x) && !changed.has(x.id));
  const views = await Promise.all(ended.map((x) => api('GET', `/runs/${seg(x.id)}`).catch((e) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e)))));
  ended.forEach((x, i) => {
    const v = views[i];
    if (!v) byId.delete(x.id); // purged
    else {
      // A deployment's result names the versions it registered and built (the summary had the names asked for).
      const r = v.result || {};
      byId.set(x.id, { ...x, state: v.state, currentStep: v.currentStep, error: v.error, lastUpdatedTime: v.lastUpdatedTime, serviceName: r.serviceName || x.serviceName, model: r.model || x.model, image: r.image || x.image });
    }
  });
  runs = { list: [...byId.values()].sort(newestFirst).slice(0, RUNS_SHOWN), asOf: r.asOf || null };
  renderRuns(runs.list);
}

function renderRuns(runs) {
  const body = $('#runs-table tbody');
  const rows = runs.map((r) =>
    el(
      'tr',
      { 'data-run-id': r.id, 'data-state': r.state, class: r.id === selectedRun ? 'selected' : '', tabindex: 0, onClick: () => selectRun(r.id) },
      el('td', { class: 'id' }, r.id),
      el('td', {}, r.type),
      el('td', { class: `state state-${r.state}` }, r.state),
      el('td', {}, r.currentStep || ''),
      el('td', {}, [r.serviceName, r.model].filter(Boolean).join(' · ')),
      el('td', {}, time(r.createdTime)),
    ),
  );
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'hint' }, 'No runs yet: deploy a model (POST /api/deployments or a deploy.json in incoming/).')));
  body.replaceChildren(...rows);
}

function selectRun(id) {
  selectedRun = id;
  detailFor = null;
  for (const tr of document.querySelectorAll('#runs-table tbody tr')) tr.classList.toggle('selected', tr.getAttribute('data-run-id') === id);
  void refreshRunDetail();
}

async function refreshRunDetail() {
  if (!selectedRun) return;
  const id = selectedRun;
  const view = await api('GET', `/runs/${seg(id)}`);
  if (id !== selectedRun) return;
  const box = $('#run-detail');
  const ended = !['Running', 'Pending'].includes(view.state);
  // An ended run does not change: draw it once.
  if (detailFor === `${id}|${view.state}|${view.lastUpdatedTime}` && ended) return;
  detailFor = `${id}|${view.state}|${view.lastUpdatedTime}`;
  const parts = [el('h3', {}, el('span', { class: 'id' }, view.id), ' ', el('span', { class: `state state-${view.state}` }, view.state))];
  if (view.kind === 'batch') parts.push(...batchDetail(view));
  else parts.push(...deployDetail(view));
  if (view.error) {
    parts.push(el('div', { class: 'error' }, el('strong', {}, view.error.code), ': ', el('pre', { class: 'log' }, view.error.message)));
  }
  const service = view.result && view.result.serviceName;
  const logs = el('div', { class: 'logs' });
  parts.push(logs);
  box.replaceChildren(...parts);
  if (service && logsRoute.known) {
    // The service's log tail, where the API has a logs route; without it the error above carries the slot's tail.
    try {
      const r = await api('GET', `/services/${seg(service)}/logs?tail=40`);
      const textOf = typeof r === 'string' ? r : r && (r.text ?? (Array.isArray(r.lines) ? r.lines.join('\n') : undefined));
      if (typeof textOf === 'string' && id === selectedRun) logs.replaceChildren(el('h4', {}, 'Log tail'), el('pre', { class: 'log' }, textOf));
    } catch (e) {
      // No such route (the host's own 404, or Azure's empty one): stop asking. A 404 of the app (no service, no slot) is not that.
      if (e instanceof ApiError && e.status === 404 && (e.code === 'NotFound' || e.code === 'Http404')) logsRoute.known = false;
    }
  }
}

function deployDetail(view) {
  const out = [];
  if (view.steps && view.steps.length) out.push(stepTimeline(view.steps));
  else out.push(el('p', { class: 'hint' }, 'No step has started yet.'));
  const r = view.result || {};
  const facts = [
    ['outcome', r.outcome],
    ['service', r.serviceName],
    ['model', r.model],
    ['image', r.image],
    ['scoring URI', r.scoringUri],
    ['current step', view.currentStep],
    ['created', view.createdTime && new Date(view.createdTime).toLocaleString()],
  ].filter(([, v]) => v);
  if (facts.length) out.push(el('dl', {}, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
  if (r.notes && r.notes.length) out.push(el('ul', { class: 'notes' }, r.notes.map((n) => el('li', {}, n))));
  const rollout = view.rollout;
  if (rollout) {
    out.push(el('p', { class: 'rollout' }, `Rollout: ${rollout.phase ?? ''}${typeof rollout.weight === 'number' ? `, new version at ${rollout.weight} %` : ''}`));
    if (rollout.phase === 'awaitingApproval') out.push(approvalButtons(view.id));
  }
  return out;
}

function approvalButtons(id) {
  const act = async (action) => {
    const body = {};
    if (action === 'reject') {
      const reason = prompt('Why is the rollout rejected?');
      if (!reason) return;
      body.reason = reason;
    }
    try {
      await api('POST', `/runs/${seg(id)}/${action}`, body);
      setStatus(`Run ${id}: ${action} sent.`);
      detailFor = null;
      void refreshRunDetail();
    } catch (e) {
      report(e, `${action} failed`);
    }
  };
  return el('div', { class: 'actions' }, el('button', { type: 'button', 'data-action': 'approve', onClick: () => act('approve') }, 'Approve'), el('button', { type: 'button', 'data-action': 'reject', class: 'danger', onClick: () => act('reject') }, 'Reject'));
}

function batchDetail(view) {
  const out = [];
  const p = view.progress;
  const c = view.counts;
  // The final counts (once the run has merged) tell partial from failed mini-batches; live progress counts both as failed.
  const mb = c
    ? { total: c.miniBatches.total, done: c.miniBatches.total - c.miniBatches.notRun, failed: c.miniBatches.failed, partial: c.miniBatches.partial }
    : p
      ? { ...p.miniBatches, partial: 0 }
      : null;
  if (mb) {
    out.push(
      el(
        'div',
        { class: 'batch-progress', 'data-done': mb.done, 'data-failed': mb.failed, 'data-partial': mb.partial, 'data-total': mb.total },
        progressBar(mb.done, mb.failed, mb.total, mb.partial),
        ` ${mb.done}/${mb.total} mini-batches, ${mb.failed} failed${mb.partial ? `, ${mb.partial} partial` : ''}`,
      ),
    );
  }
  if (p) {
    out.push(el('p', {}, `phase ${p.phase}; ${p.items.done}/${p.items.total} inputs (${p.items.failed} failed); ${p.rowsPerSecond.toFixed(1)} inputs/s${p.etaSeconds !== null && p.etaSeconds !== undefined ? `, ETA ${Math.round(p.etaSeconds)} s` : ''}`));
    if (p.lastError) out.push(el('p', { class: 'error failed-minibatch' }, `mini-batch ${p.lastError.miniBatch ?? '?'} failed — ${p.lastError.code}: ${p.lastError.message}`));
  }
  if (c) out.push(el('p', {}, `mini-batches: ${c.miniBatches.succeeded} succeeded, ${c.miniBatches.partial} partial, ${c.miniBatches.failed} failed, ${c.miniBatches.notRun} not run; inputs: ${c.items.succeeded} succeeded, ${c.items.failed} failed`));
  const job = view.job || {};
  out.push(el('dl', {}, [['model', job.model], ['image', job.image], ['inputs', job.inputKind], ['output', view.output]].filter(([, v]) => v).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
  if (view.threshold) out.push(el('p', { class: 'error' }, `threshold: ${JSON.stringify(view.threshold)}`));
  return out;
}

// ---------------------------------------------------------------- services

/** Per service: its card, previous metrics sample and the chart series. */
const cards = new Map();

function card(name) {
  let c = cards.get(name);
  if (c) return c;
  const info = el('div', { class: 'info' });
  const figures = el('div', { class: 'figures' });
  const keys = el('div', { class: 'keys' });
  const logs = el('div', { class: 'logs' });
  const message = el('p', { class: 'message', role: 'status' });
  const root = el(
    'article',
    { class: 'service-card', 'data-service': name },
    el('h3', {}, name),
    info,
    figures,
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'button', 'data-action': 'show-logs', onClick: () => toggleLogs(name) }, 'Show logs'),
      el('button', { type: 'button', 'data-action': 'reveal-keys', onClick: () => toggleKeys(name) }, 'Reveal keys'),
      el('button', { type: 'button', 'data-action': 'regenerate-primary', onClick: () => regenerate(name, 'Primary') }, 'Regenerate primary key'),
      el('button', { type: 'button', 'data-action': 'regenerate-secondary', onClick: () => regenerate(name, 'Secondary') }, 'Regenerate secondary key'),
      el('button', { type: 'button', 'data-action': 'delete', class: 'danger', onClick: () => removeService(name) }, 'Delete service'),
    ),
    keys,
    logs,
    message,
  );
  c = { root, info, figures, keys, logs, message, last: null, rps: [], latency: [], errors: [], revealed: false, logsShown: false };
  cards.set(name, c);
  return c;
}

/** The service's slots: the one serving (its image) and the one a deployment is filling, with their traffic. */
function slotList(s, rollout) {
  const items = [];
  const w = rollout && s.currentDeployment ? Number(rollout.weight) || 0 : 0;
  if (s.activeSlot) items.push(el('li', { 'data-slot': s.activeSlot, 'data-role': 'serving' }, `${s.activeSlot}: serving ${s.image || ''} (${100 - w} % of traffic)`));
  const d = s.currentDeployment;
  if (d && d.slot && d.slot !== s.activeSlot) items.push(el('li', { 'data-slot': d.slot, 'data-role': 'deploying' }, `${d.slot}: deploying (run ${d.runId}${rollout ? `, ${w} % of traffic, ${rollout.phase}` : ''})`));
  return items.length ? el('ul', { class: 'slots' }, items) : undefined;
}

function renderServiceInfo(c, s, rollout) {
  const cfg = s.config || {};
  const facts = [
    ['state', el('span', { class: `state state-${s.state}` }, s.state)],
    ['target', s.target],
    ['image', s.image],
    ['models', (s.models || []).join(', ')],
    ['slots', slotList(s, rollout)],
    ['replicas', cfg.autoscaleEnabled ? `autoscale ${cfg.autoscaleMinReplicas ?? '?'}–${cfg.autoscaleMaxReplicas ?? '?'}` : cfg.numReplicas],
    ['deploying', s.currentDeployment && s.currentDeployment.runId],
    ['scoring URI', s.scoringUri],
    ['auth', s.authEnabled ? 'key' : s.config && s.config.tokenAuthEnabled ? 'token' : 'none'],
    ['updated', s.updatedTime && new Date(s.updatedTime).toLocaleString()],
  ];
  // Traffic weights: from the service answer when it has them, else from the rollout of the run deploying it.
  const traffic = s.traffic || s.trafficWeights;
  if (traffic && typeof traffic === 'object') facts.push(['traffic', el('span', { class: 'traffic' }, Object.entries(traffic).map(([slot, w]) => `${slot} ${typeof w === 'object' ? JSON.stringify(w) : w} %`).join(', '))]);
  else if (rollout && s.currentDeployment) {
    const w = Number(rollout.weight) || 0;
    facts.push(['traffic', `${s.activeSlot ?? 'serving'} ${100 - w} % · ${s.currentDeployment.slot} ${w} % (${rollout.phase})`]);
  }
  if (s.tags && Object.keys(s.tags).length) facts.push(['tags', chips(s.tags)]);
  c.info.replaceChildren(el('dl', {}, facts.filter(([, v]) => v).map(([k, v]) => [el('dt', {}, k), el('dd', { class: k.replace(/\W+/g, '-') }, v)])));
  if (s.lastError) c.info.append(el('p', { class: 'error' }, `${s.lastError.code}: ${s.lastError.message}`));
}

function pushSample(arr, v) {
  arr.push(v);
  if (arr.length > SAMPLES) arr.shift();
}

async function refreshMetrics(c, s) {
  if (!s.scoringUri || s.state === 'Deleting') return;
  let m;
  try {
    m = await api('GET', `/services/${seg(s.name)}/metrics`);
  } catch (e) {
    c.figures.replaceChildren(el('p', { class: 'hint' }, `metrics: ${e instanceof ApiError ? e.code : e.message}`));
    return;
  }
  const prev = c.last;
  c.last = m;
  if (prev) {
    const dt = (Date.parse(m.sampledTime) - Date.parse(prev.sampledTime)) / 1000;
    const dReq = m.score.requests - prev.score.requests;
    const dErr = m.score.serverErrors - prev.score.serverErrors;
    const dCount = m.score.durationCount - prev.score.durationCount;
    const dSum = m.score.durationSecondsSum - prev.score.durationSecondsSum;
    const ok = dt > 0 && dReq >= 0 && dErr >= 0 && dCount >= 0; // a restarted replica resets its counters
    pushSample(c.rps, ok ? dReq / dt : null);
    pushSample(c.errors, ok && dReq > 0 ? (100 * dErr) / dReq : ok ? 0 : null);
    pushSample(c.latency, ok && dCount > 0 ? (1000 * dSum) / dCount : null);
  }
  const lastOf = (a) => [...a].reverse().find((v) => typeof v === 'number');
  const rps = lastOf(c.rps);
  const err = lastOf(c.errors);
  c.figures.replaceChildren(
    el('div', { class: 'charts' }, sparkline(c.rps, { label: 'req/s', cls: 'rps' }), sparkline(c.latency, { label: 'latency', unit: 'ms', cls: 'latency' })),
    el(
      'p',
      { class: 'live', 'data-requests': m.score.requests, 'data-rps': rps === undefined ? '' : rps.toFixed(3), 'data-error-rate': err === undefined ? '' : err.toFixed(2) },
      `${rps === undefined ? '—' : rps.toFixed(2)} req/s · errors ${err === undefined ? '—' : `${err.toFixed(1)} %`} · ${m.score.requests} scored · ${m.workersReady}/${m.workers} workers · ${m.inflight} in flight`,
    ),
  );
}

async function refreshLogs(c, name) {
  if (!c.logsShown) return;
  let text;
  try {
    const r = await api('GET', `/services/${seg(name)}/logs?tail=${LOG_LINES}`);
    text = r.lines.join('\n') || '(no output yet)';
  } catch (e) {
    if (c.logsShown) c.logs.replaceChildren(el('p', { class: 'hint' }, `logs: ${e instanceof ApiError ? `${e.code}: ${e.message}` : e.message}`));
    return;
  }
  if (!c.logsShown) return;
  const pre = c.logs.querySelector('pre.log');
  // Redrawn only when it changed, so that a reader's scroll position stays.
  if (pre && pre.textContent === text) return;
  c.logs.replaceChildren(el('h4', {}, `Log (last ${LOG_LINES} lines)`), el('pre', { class: 'log' }, text));
  const shown = c.logs.querySelector('pre.log');
  shown.scrollTop = shown.scrollHeight;
}

async function toggleLogs(name) {
  const c = card(name);
  const button = c.root.querySelector('[data-action="show-logs"]');
  c.logsShown = !c.logsShown;
  button.textContent = c.logsShown ? 'Hide logs' : 'Show logs';
  if (!c.logsShown) return c.logs.replaceChildren();
  c.logs.replaceChildren(el('p', { class: 'hint' }, 'Loading the log…'));
  await refreshLogs(c, name);
}

function showKeys(c, keys) {
  c.keys.replaceChildren(el('dl', {}, el('dt', {}, 'primary'), el('dd', {}, el('code', { class: 'key', 'data-key': 'primary' }, keys.primaryKey)), el('dt', {}, 'secondary'), el('dd', {}, el('code', { class: 'key', 'data-key': 'secondary' }, keys.secondaryKey))));
}

async function toggleKeys(name) {
  const c = card(name);
  const button = c.root.querySelector('[data-action="reveal-keys"]');
  if (c.revealed) {
    c.revealed = false;
    c.keys.replaceChildren();
    button.textContent = 'Reveal keys';
    return;
  }
  try {
    const keys = await api('GET', `/services/${seg(name)}/keys`);
    c.revealed = true;
    showKeys(c, keys);
    button.textContent = 'Hide keys';
  } catch (e) {
    report(e, `keys of ${name}`);
  }
}

async function regenerate(name, keyType) {
  const c = card(name);
  if (!confirm(`Regenerate the ${keyType.toLowerCase()} key of ${name}? Clients using it stop working.`)) return;
  try {
    const keys = await api('POST', `/services/${seg(name)}/keys/regenerate`, { keyType });
    if (c.revealed) showKeys(c, keys);
    c.message.textContent = `${keyType} key regenerated${c.revealed ? '' : ' (reveal the keys to see it)'}.`;
  } catch (e) {
    report(e, `regenerating a key of ${name}`);
  }
}

async function removeService(name) {
  const c = card(name);
  if (!confirm(`Delete service ${name}? Its endpoint stops answering.`)) return;
  c.message.textContent = 'Deleting…';
  try {
    await api('DELETE', `/services/${seg(name)}`);
    c.message.textContent = 'Deleted.';
    void refresh();
  } catch (e) {
    c.message.textContent = '';
    report(e, `deleting ${name}`);
  }
}

async function refreshServices() {
  const { value } = await api('GET', '/services');
  const list = $('#services-list');
  const names = new Set(value.map((s) => s.name));
  for (const [name, c] of cards) {
    if (!names.has(name)) {
      c.root.remove();
      cards.delete(name);
    }
  }
  const nodes = [];
  // A service being deployed with a progressive rollout: its run says the weights.
  const rollouts = await Promise.all(
    value.map((s) => (s.currentDeployment ? api('GET', `/runs/${seg(s.currentDeployment.runId)}`).then((v) => v && v.rollout, () => undefined) : undefined)),
  );
  value.forEach((s, i) => {
    const c = card(s.name);
    renderServiceInfo(c, s, rollouts[i]);
    nodes.push(c.root);
  });
  if (!nodes.length) nodes.push(el('p', { class: 'hint' }, 'No services.'));
  // Move only what is out of place, so a card being clicked stays in the document.
  nodes.forEach((n, i) => {
    if (list.children[i] !== n) list.insertBefore(n, list.children[i] ?? null);
  });
  while (list.children.length > nodes.length) list.lastElementChild.remove();
  await Promise.all(value.map((s) => Promise.all([refreshMetrics(card(s.name), s), refreshLogs(card(s.name), s.name)])));
}

// ---------------------------------------------------------------- models and images

async function refreshModels() {
  const { value } = await api('GET', '/models');
  $('#models-table tbody').replaceChildren(
    ...value.map((m) => el('tr', { 'data-model': m.id }, el('td', { class: 'id' }, m.id), el('td', {}, m.description || ''), el('td', {}, chips(m.tags)), el('td', {}, chips(m.properties)), el('td', {}, time(m.createdTime)))),
  );
}

async function refreshImages() {
  const { value } = await api('GET', '/images');
  $('#images-table tbody').replaceChildren(
    ...value.map((i) =>
      el('tr', { 'data-image': i.id }, el('td', { class: 'id' }, i.id), el('td', { class: `state state-${i.state}` }, i.state), el('td', {}, i.runtime), el('td', {}, (i.models || []).join(', ')), el('td', {}, chips(i.tags)), el('td', { class: 'digest' }, (i.digest || '').slice(0, 19))),
    ),
  );
}

// ---------------------------------------------------------------- refresh loop

let busy = false;

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const results = await Promise.allSettled([
      refreshRuns(),
      refreshRunDetail(),
      refreshServices(),
      refreshModels(),
      refreshImages(),
    ]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) report(failed.reason, 'refresh');
    else setStatus(`updated ${new Date().toLocaleTimeString()}`);
    document.body.setAttribute('data-refreshed', String(Date.now()));
  } finally {
    busy = false;
  }
}

function loop() {
  const next = () => setTimeout(loop, POLL_MS);
  if (document.hidden) return next();
  refresh().finally(next);
}

initKeyForm();
loop();
