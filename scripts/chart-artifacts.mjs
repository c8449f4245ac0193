#!/usr/bin/env node
// What is generated from the chart and the README, so it never drifts:
// - charts/podflow/README.md, between its `variables` markers: every variable of README.md's
//   "Configuration" tables and how the chart sets it (a value, or coordinator.env / worker.env);
// - k8s/podflow.yaml: the chart rendered with its defaults for users without Helm (all but the
//   Secret, which they create themselves: see the chart README).
// `--check` changes nothing and exits 1 naming what is out of date (test/helm runs it).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHelmTools } from './lib/helm-tools.mjs';
import { ROOT } from './lib/services.mjs';

const CHART = join(ROOT, 'charts/podflow');
const START = '<!-- variables:start (scripts/chart-artifacts.mjs) -->';
const END = '<!-- variables:end -->';

/** Variables the chart sets from its values (the rest go in coordinator.env / worker.env). */
const FROM_VALUES = {
  PORT: '`coordinator.port`',
  REDIS_URL: '`redis.embedded.enabled` (the in-chart Redis), or `redis.external.url`',
  REDIS_CLUSTER_NODES: '`redis.external.clusterNodes`',
  REDIS_SENTINELS: '`redis.external.sentinels`',
  REDIS_SENTINEL_NAME: '`redis.external.sentinelName`',
  REDIS_PASSWORD: '`redis.existingSecret` (key `redis-password`); for the in-chart Redis, generated into the chart\'s Secret unless `redis.existingSecret` names one',
  REDIS_TLS: '`redis.external.tls`',
  QUEUE_PREFIX: '`redis.queuePrefix`',
  PODFLOW_API_KEYS: '`auth.apiKeys`, or `auth.existingSecret` (key `api-keys`)',
  PODFLOW_ADMIN_KEY: '`auth.generateAdminKey`, or `auth.existingSecret` (key `admin-key`)',
  PUBLIC_URL: '`files.publicUrl` (`files.mode: volume`)',
  STORAGE_DIR: '`files.mode: volume` (the shared volume, mounted at /var/lib/podflow/files)',
  FILE_URL_SECRET: 'generated once into the release Secret (`files.mode: volume`)',
  FILE_URL_TTL_SECONDS: '`files.urlTtlSeconds`',
  STORAGE: '`files.mode`',
  S3_BUCKET: '`files.s3.bucket`',
  S3_ENDPOINT: '`files.s3.endpoint`',
  S3_PUBLIC_ENDPOINT: '`files.s3.publicEndpoint`',
  S3_REGION: '`files.s3.region`',
  S3_FORCE_PATH_STYLE: '`files.s3.forcePathStyle`',
  S3_KEY_PREFIX: '`files.s3.keyPrefix`',
  WORKER_CONCURRENCY: '`worker.concurrency`',
  WORKER_ID: 'the worker pod\'s name',
  WORKER_HTTP_PORT: '`worker.httpPort`',
  SHUTDOWN_GRACE_MS: '`worker.terminationGracePeriodSeconds` less 10 s',
  SANDBOX_DRIVER: '`kubernetes`',
  K8S_NAMESPACE: '`sandbox.namespace`',
  K8S_IMAGE_PYTHON: '`sandbox.images.python`',
  K8S_IMAGE_NODE: '`sandbox.images.node`',
  K8S_IMAGE_PULL_POLICY: '`image.pullPolicy`',
  K8S_RUNTIME_CLASS: '`sandbox.runtimeClassName`',
  K8S_NODE_SELECTOR: '`sandbox.nodeSelector`',
  K8S_TOLERATIONS: '`sandbox.tolerations`',
  K8S_IMAGE_PULL_SECRETS: '`image.pullSecrets`',
  K8S_DEFAULT_CPU_MILLIS: '`sandbox.defaultCpuMillis`',
  K8S_MAX_CPU_MILLIS: '`sandbox.maxCpuMillis`',
  SANDBOX_MEMORY_MB: '`sandbox.defaultMemoryMB`',
  K8S_MAX_MEMORY_MB: '`sandbox.maxMemoryMB`',
  K8S_WARM_POOL_SIZE: '`sandbox.warmPoolSize`',
  K8S_LAYER_VOLUME_CLAIM: '`sandbox.layers` (the chart\'s claim, or `existingClaim`)',
  K8S_LAYER_CA_CONFIGMAP: '`sandbox.layers.caBundle` (the chart makes the ConfigMap)',
};

/** Variables of the process driver or of one machine: not used by a podflow running in the cluster. */
const NOT_IN_CLUSTER = /^(SANDBOX_(ISOLATION|MAX_MEMORY_MB|CPU_MILLIS|MAX_CPU_MILLIS|MAX_PROCESSES|HOME_SIZE_MB|TMP_SIZE_MB|SHM_SIZE_MB|WARM_POOL_SIZE|EGRESS_ALLOW_CIDRS|MAX_OPEN_FILES)|LAYER_INSTALL_(MEMORY_MB|TMP_MB|MAX_MB)|PYTHON_BIN|NPM_BIN|LAYER_CACHE_DIR|NOOP_DELAY_MS)$/;
/** Variables whose default is what a pod needs. */
const DEFAULT_IN_CLUSTER = /^(HOST|WORKER_HTTP_HOST)$/;

/** Every variable of README.md's configuration tables, with who reads it. */
function readmeVariables() {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('### Dependencies'));
  const found = [];
  let inK8sTable = false;
  for (const line of section.split('\n')) {
    if (line.startsWith('| variable | default | meaning |')) inK8sTable = true;
    const match = /^\| ((?:`[A-Z0-9_]+`(?:, )?)+) \| ([^|]+) \|/.exec(line);
    if (!match) continue;
    const usedBy = inK8sTable ? 'worker' : match[2].trim();
    for (const [, name] of match[1].matchAll(/`([A-Z0-9_]+)`/g)) if (!found.some((v) => v.name === name)) found.push({ name, usedBy });
  }
  return found;
}

function variablesSection() {
  const rows = readmeVariables().map(({ name, usedBy }) => {
    const how = FROM_VALUES[name] ?? (DEFAULT_IN_CLUSTER.test(name) ? 'its default (`0.0.0.0`) is what a pod needs' : NOT_IN_CLUSTER.test(name) ? 'not used in the cluster (process driver or one machine)' : usedBy === 'both' ? '`coordinator.env` and `worker.env`' : `\`${usedBy === 'worker' ? 'worker' : 'coordinator'}.env\``);
    return `| \`${name}\` | ${usedBy} | ${how} |`;
  });
  return [START, '', '| variable | read by | set with |', '|---|---|---|', ...rows, '', END].join('\n');
}

function renderedManifests(helm) {
  const args = ['template', 'podflow', CHART, '--namespace', 'podflow-system', '--kube-version', '1.34.0'];
  const rendered = spawnSync(helm, args, { encoding: 'utf8' });
  if (rendered.status !== 0) throw new Error(`helm template failed:\n${rendered.stderr}`);
  // The Secret holds generated values (different on every render): users create their own.
  const documents = rendered.stdout.split(/^---\n/m).filter((doc) => doc.trim() !== '' && !/^kind: Secret$/m.test(doc));
  return `# podflow for \`kubectl apply\`, rendered from charts/podflow with its defaults by scripts/chart-artifacts.mjs:\n# do not edit. Create the Secret first (charts/podflow/README.md "Without Helm").\n---\n${documents.join('---\n')}`;
}

function main() {
  const check = process.argv.includes('--check');
  const { helm } = ensureHelmTools();
  const readmePath = join(CHART, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const from = readme.indexOf(START);
  const to = readme.indexOf(END);
  if (from < 0 || to < 0) throw new Error(`${readmePath} has no ${START} ... ${END} markers`);
  const artifacts = [
    { path: readmePath, text: `${readme.slice(0, from)}${variablesSection()}${readme.slice(to + END.length)}` },
    { path: join(ROOT, 'k8s/podflow.yaml'), text: renderedManifests(helm) },
  ];
  const stale = [];
  for (const { path, text } of artifacts) {
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // missing: stale
    }
    if (current === text) continue;
    stale.push(path);
    if (!check) writeFileSync(path, text);
  }
  if (check && stale.length > 0) {
    process.stderr.write(`out of date: ${stale.join(', ')}; run node scripts/chart-artifacts.mjs\n`);
    process.exit(1);
  }
  if (!check) process.stdout.write(stale.length > 0 ? `wrote ${stale.join(', ')}\n` : 'up to date\n');
}

main();
