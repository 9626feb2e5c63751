// Pictures drawn as SVG elements (no chart library): a run's step timeline and a service's sparklines.
// Every text is set with textContent; nothing from the API is parsed as markup.

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function text(x, y, s, attrs = {}) {
  const t = svg('text', { x, y, ...attrs });
  t.textContent = s;
  return t;
}

const fmtSeconds = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`);

/**
 * One bar per step on a time axis; colour by outcome (class `step-Succeeded`, `step-Failed`, `step-Running`,
 * `step-Skipped`). A running step reaches `now`.
 */
export function stepTimeline(steps, now = Date.now()) {
  const rowH = 22;
  const labelW = 110;
  const width = 560;
  const plotW = width - labelW - 70;
  const times = steps.flatMap((s) => [Date.parse(s.startedTime), s.endedTime ? Date.parse(s.endedTime) : now]).filter(Number.isFinite);
  const t0 = times.length ? Math.min(...times) : now;
  const t1 = Math.max(t0 + 1, ...(times.length ? times : [now]));
  const span = t1 - t0;
  const height = steps.length * rowH + 26;
  const root = svg('svg', { class: 'timeline', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' });
  const title = svg('title');
  title.textContent = `Steps of the run over ${fmtSeconds(span)}`;
  root.append(title);
  const x = (t) => labelW + ((t - t0) / span) * plotW;
  steps.forEach((s, i) => {
    const start = Date.parse(s.startedTime);
    const end = s.endedTime ? Date.parse(s.endedTime) : now;
    const y = i * rowH + 4;
    const g = svg('g', { class: `step step-${s.state}`, 'data-step': s.name, 'data-state': s.state });
    g.append(text(labelW - 6, y + 13, s.name, { 'text-anchor': 'end', class: 'label' }));
    const bx = Number.isFinite(start) ? x(start) : labelW;
    const bw = Math.max(2, (Number.isFinite(end) ? x(end) : bx) - bx);
    const bar = svg('rect', { x: bx.toFixed(1), y, width: bw.toFixed(1), height: rowH - 8, rx: 3, class: 'bar' });
    const tip = svg('title');
    tip.textContent = `${s.name}: ${s.state}, ${fmtSeconds(Math.max(0, end - start))}${s.detail ? ` — ${s.detail}` : ''}`;
    bar.append(tip);
    g.append(bar, text(bx + bw + 4, y + 12, fmtSeconds(Math.max(0, end - start)), { class: 'dur' }));
    root.append(g);
  });
  const axisY = steps.length * rowH + 8;
  root.append(svg('line', { x1: labelW, x2: labelW + plotW, y1: axisY, y2: axisY, class: 'axis' }));
  root.append(text(labelW, axisY + 14, '0 s', { class: 'tick' }), text(labelW + plotW, axisY + 14, fmtSeconds(span), { class: 'tick', 'text-anchor': 'end' }));
  return root;
}

/** A small line chart of `values` (numbers or null for "no data"), with its last value as a label. */
export function sparkline(values, { label, unit = '', cls = '' } = {}) {
  const width = 180;
  const height = 40;
  const root = svg('svg', { class: `spark ${cls}`, viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' });
  const known = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  const max = Math.max(1e-9, ...known);
  const last = known.length ? known[known.length - 1] : null;
  const title = svg('title');
  title.textContent = `${label}: ${last === null ? 'no data yet' : `${last.toFixed(2)} ${unit}`}`;
  root.append(title);
  const n = Math.max(2, values.length);
  const pts = [];
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return;
    pts.push(`${((i / (n - 1)) * (width - 2) + 1).toFixed(1)},${(height - 14 - (v / max) * (height - 18) + 2).toFixed(1)}`);
  });
  if (pts.length) {
    root.append(svg('polyline', { points: pts.join(' '), class: 'line', fill: 'none' }));
    const [cx, cy] = pts[pts.length - 1].split(',');
    root.append(svg('circle', { cx, cy, r: 2, class: 'dot' }));
  }
  root.append(text(1, height - 2, `${label} ${last === null ? '—' : last < 10 ? last.toFixed(2) : last.toFixed(0)} ${unit}`, { class: 'spark-label' }));
  return root;
}

/** A horizontal progress bar: succeeded, partial (some inputs failed) and failed parts of a total. */
export function progressBar(done, failed, total, partial = 0) {
  const width = 300;
  const root = svg('svg', { class: 'progress', viewBox: `0 0 ${width} 14`, width, height: 14, role: 'img' });
  const t = Math.max(1, total);
  const okW = (Math.max(0, done - failed - partial) / t) * width;
  const partW = (Math.max(0, partial) / t) * width;
  const failW = (Math.max(0, failed) / t) * width;
  const title = svg('title');
  title.textContent = `${done} of ${total} mini-batches done, ${failed} failed${partial ? `, ${partial} partial` : ''}`;
  root.append(
    title,
    svg('rect', { x: 0, y: 0, width, height: 14, class: 'track' }),
    svg('rect', { x: 0, y: 0, width: okW.toFixed(1), height: 14, class: 'ok' }),
    svg('rect', { x: okW.toFixed(1), y: 0, width: partW.toFixed(1), height: 14, class: 'partial' }),
    svg('rect', { x: (okW + partW).toFixed(1), y: 0, width: failW.toFixed(1), height: 14, class: 'failed' }),
  );
  return root;
}
