#!/usr/bin/env node
// `mdf` (package.json "bin"): runs the compiled CLI, dist/cli/mdf.js (built by `npm run build`).
'use strict';
const path = require('path');
const fs = require('fs');
const cli = path.join(__dirname, '..', 'dist', 'cli', 'mdf.js');
if (!fs.existsSync(cli)) {
  process.stderr.write(`mdf: ${cli} does not exist: run "npm run build" first.\n`);
  process.exit(2);
}
require(cli).main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`mdf: ${(e && e.stack) || e}\n`);
    process.exitCode = 1;
  },
);
