/**
 * Batch entry script: a small MLP (model.json: layer sizes + seed) scoring iris rows, one "<id>,<class>" per row.
 * CPU-bound on purpose (≈ 0.4 M multiply-adds per row), so bench:batch measures the pool's parallelism, not I/O.
 */
'use strict';
const fs = require('fs');
const path = require('path');

let model = null;
let layers = null;

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function init() {
  const base = process.env.AZUREML_MODEL_DIR || __dirname;
  const file = base.endsWith('.json') ? base : path.join(base, 'model.json');
  model = JSON.parse(fs.readFileSync(file, 'utf8'));
  const rand = prng(model.seed);
  const sizes = [model.features.length, ...model.hidden, model.classes.length];
  layers = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const n = sizes[l];
    const m = sizes[l + 1];
    const w = new Float64Array(n * m);
    const scale = 1 / Math.sqrt(n);
    for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * scale;
    layers.push({ n, m, w, b: new Float64Array(m).map(() => (rand() * 2 - 1) * 0.1) });
  }
}

function predict(row) {
  let x = Float64Array.from(model.features, (f) => Number(row[f]));
  if (x.some((v) => Number.isNaN(v))) return null;
  layers.forEach((layer, l) => {
    const y = new Float64Array(layer.m);
    for (let j = 0; j < layer.m; j++) {
      let s = layer.b[j];
      for (let i = 0; i < layer.n; i++) s += layer.w[j * layer.n + i] * x[i];
      y[j] = l + 1 < layers.length ? Math.tanh(s) : s;
    }
    x = y;
  });
  let best = 0;
  for (let k = 1; k < x.length; k++) if (x[k] > x[best]) best = k;
  return model.classes[best];
}

function run(miniBatch) {
  const out = [];
  for (const row of miniBatch) {
    const label = predict(row);
    if (label !== null) out.push(`${row.id},${label}`);
  }
  return out;
}

module.exports = { init, run };
