// Builds dist/node-runner.js before the protocol tests when it is missing or older than any
// source it is bundled from, so `jest` alone always tests the current runner.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(full));
    else if (entry.isFile() && !entry.name.endsWith('.spec.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

module.exports = async function globalSetup() {
  const bundle = path.join(__dirname, 'dist', 'node-runner.js');
  const built = fs.existsSync(bundle) ? fs.statSync(bundle).mtimeMs : 0;
  const sources = Math.max(
    newestMtime(path.join(__dirname, 'src')),
    newestMtime(path.join(__dirname, '..', 'protocol', 'src')),
    fs.statSync(path.join(__dirname, 'scripts', 'bundle.mjs')).mtimeMs,
  );
  if (built < sources) execFileSync(process.execPath, [path.join(__dirname, 'scripts', 'bundle.mjs')], { stdio: 'inherit' });
};
