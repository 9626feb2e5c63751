/**
 * Batch entry script for the Node runtime: init() once per worker, run(miniBatch) per mini-batch.
 * Same behaviour as score.py: one element per input; unscorable rows are left out (failed inputs).
 */
'use strict';
const fs = require('fs');
const path = require('path');

let model = null;

function init() {
  const base = process.env.AZUREML_MODEL_DIR || path.join(__dirname, 'model');
  const file = base.endsWith('.json') ? base : path.join(base, 'model.json');
  model = JSON.parse(fs.readFileSync(file, 'utf8'));
}

function predict(row) {
  const x = model.features.map((name) => (row[name] === null || row[name] === undefined || row[name] === '' ? NaN : Number(row[name])));
  if (x.some((v) => Number.isNaN(v))) return null;
  const scores = model.weights.map((ws, k) => ws.reduce((s, w, i) => s + w * x[i], model.bias[k]));
  return model.classes[scores.indexOf(Math.max(...scores))];
}

/** Minimal CSV reader for the files example (no quoted commas in this data). */
function readCsv(file) {
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines.shift().split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
}

function run(miniBatch) {
  const results = [];
  for (const item of miniBatch) {
    if (typeof item === 'string') {
      const rows = readCsv(item);
      const counts = Object.fromEntries(model.classes.map((c) => [c, 0]));
      for (const r of rows) {
        const label = predict(r);
        if (label) counts[label]++;
      }
      results.push(`${path.basename(item)}: ${rows.length} rows ${JSON.stringify(counts)}`);
    } else {
      const label = predict(item);
      if (label !== null) results.push(`${item.id},${label}`);
    }
  }
  return results;
}

module.exports = { init, run };
