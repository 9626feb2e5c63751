// Diabetes progression, linear model (coefficients in model.json, trained by ../train_diabetes.py).
// Needs nothing beyond Node: the scoring runtime calls init() once, then run(body) per request.
const fs = require('fs');
const path = require('path');

let model;

function init() {
  // AZUREML_MODEL_DIR is the registered model's folder (one model: its files directly).
  const dir = process.env.AZUREML_MODEL_DIR || __dirname;
  const file = fs.statSync(dir).isFile() ? dir : path.join(dir, 'model.json');
  model = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(model.coef) || model.coef.length !== 10) throw new Error(`model.json must hold 10 coefficients, found ${model.coef && model.coef.length}`);
}

// {"data": [[age, sex, bmi, bp, s1..s6], ...]} → [prediction, ...]
function run(input) {
  const rows = input && input.data;
  if (!Array.isArray(rows)) throw new Error('expected {"data": [[10 numbers], ...]}');
  return rows.map((row, i) => {
    if (!Array.isArray(row) || row.length !== model.coef.length) throw new Error(`row ${i} must hold ${model.coef.length} numbers`);
    return row.reduce((sum, x, j) => sum + x * model.coef[j], model.intercept);
  });
}

module.exports = {
  init,
  run,
  // Samples → /swagger.json (same layout as inference_schema in Python).
  inputSample: { data: [[0.038076, 0.05068, 0.061696, 0.021872, -0.044223, -0.034821, -0.043401, -0.002592, 0.019907, -0.017646]] },
  outputSample: [210.569375],
};
