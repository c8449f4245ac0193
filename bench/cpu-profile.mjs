#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from cpu-profile-hook.mjs or `node --cpu-prof`): busy time by
// package, and the functions with the most self time and the most inclusive time (time with the
// function anywhere on the stack, counted once per sample however deep the recursion).
//
//   node bench/cpu-profile.mjs <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
/** V8's pseudo-frames: not code of any package. */
const SPECIAL = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);

/** Where a script comes from: an npm package, a podflow project, node's own modules, or the URL. */
export function packageOf(url) {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return 'node:internals';
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const [scopeOrName, name] = path.slice(modules + '/node_modules/'.length).split('/');
    return scopeOrName.startsWith('@') ? `${scopeOrName}/${name}` : scopeOrName;
  }
  const project = /\/((?:libs|services)\/[^/]+)\//.exec(path);
  return project ? `podflow ${project[1]}` : path;
}

function shortUrl(url) {
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + '/node_modules/'.length);
  const project = /\/((?:libs|services)\/.*)$/.exec(path);
  return project ? project[1] : path.startsWith(ROOT) ? path.slice(ROOT.length + 1) : path;
}

function frameName({ functionName, url, lineNumber }) {
  if (SPECIAL.has(functionName)) return functionName;
  return `${functionName || '(anonymous)'} ${url ? `${shortUrl(url)}:${lineNumber + 1}` : '(native)'}`;
}

/**
 * Self and inclusive milliseconds per function and self milliseconds per package. Sample i lasts
 * until sample i + 1 (timeDeltas[i + 1]); the last one gets the mean interval.
 */
export function summariseProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const { samples, timeDeltas } = profile;
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const meanMs = totalMs / Math.max(1, samples.length);
  const self = new Map();
  const inclusive = new Map();
  const packages = new Map();
  let idleMs = 0;
  let busyMs = 0;
  const add = (map, key, ms) => map.set(key, (map.get(key) ?? 0) + ms);
  for (let i = 0; i < samples.length; i++) {
    const ms = i + 1 < timeDeltas.length ? timeDeltas[i + 1] / 1000 : meanMs;
    const leaf = byId.get(samples[i]);
    const leafName = frameName(leaf.callFrame);
    if (leafName === '(idle)') {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    add(self, leafName, ms);
    add(packages, SPECIAL.has(leaf.callFrame.functionName) ? leaf.callFrame.functionName : packageOf(leaf.callFrame.url), ms);
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const name = frameName(byId.get(id).callFrame);
      if (name === '(root)' || seen.has(name)) continue;
      seen.add(name);
      add(inclusive, name, ms);
    }
  }
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]);
  return { totalMs, busyMs, idleMs, samples: samples.length, self: sorted(self), inclusive: sorted(inclusive), packages: sorted(packages) };
}

/** The summary as text: busy/idle, then the `top` packages and functions by self and inclusive time. */
export function formatSummary(summary, top = 25) {
  const pct = (ms) => `${((100 * ms) / summary.busyMs).toFixed(1).padStart(5)} %`;
  const rows = (list) => list.slice(0, top).map(([name, ms]) => `  ${ms.toFixed(0).padStart(7)} ms ${pct(ms)}  ${name}`);
  return [
    `profile ${(summary.totalMs / 1000).toFixed(2)} s, ${summary.samples} samples: busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms (percentages are of busy time)`,
    'self time by package:',
    ...rows(summary.packages),
    'self time by function:',
    ...rows(summary.self),
    'inclusive time by function:',
    ...rows(summary.inclusive),
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, top = '25'] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/cpu-profile.mjs <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(formatSummary(summariseProfile(JSON.parse(readFileSync(file, 'utf8'))), Number(top)));
}
