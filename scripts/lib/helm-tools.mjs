// Helm and kubeconform for the chart's tests (test/helm), built once from their Go modules at
// pinned versions and cached under $PODFLOW_CACHE_DIR/tools/<name>-<version>/ (default
// ~/.cache/podflow/tools), like MinIO and the cluster binaries: no download site is needed.
// PODFLOW_HELM_BIN / PODFLOW_KUBECONFORM_BIN point at existing binaries instead.
// Run directly, it prints {"helm": path, "kubeconform": path}.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findGo } from './minio.mjs';
import { CACHE_DIR, say } from './services.mjs';

export const TOOLS = {
  helm: { module: 'helm.sh/helm/v3/cmd/helm', version: 'v3.22.0', env: 'PODFLOW_HELM_BIN' },
  kubeconform: { module: 'github.com/yannh/kubeconform/cmd/kubeconform', version: 'v0.7.0', env: 'PODFLOW_KUBECONFORM_BIN' },
};

function ensureTool(name) {
  const tool = TOOLS[name];
  if (process.env[tool.env]) return process.env[tool.env];
  const dir = join(CACHE_DIR, 'tools', `${name}-${tool.version}`);
  const binary = join(dir, name);
  if (existsSync(binary)) return binary;
  const toolchain = findGo();
  if (!toolchain) throw new Error(`the chart tests need ${name}, built from its Go module; install Go, or set ${tool.env} to a ${name} binary`);
  const gobin = join(dir, `.build-${process.pid}`);
  mkdirSync(gobin, { recursive: true });
  say(`building ${name} ${tool.version} with ${toolchain.version} (go install, first run only)`);
  const built = spawnSync(toolchain.go, ['install', `${tool.module}@${tool.version}`], { env: { ...process.env, GOBIN: gobin, CGO_ENABLED: '0' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (built.status !== 0) {
    rmSync(gobin, { recursive: true, force: true });
    throw new Error(`go install ${tool.module}@${tool.version} failed:\n${(built.stderr ?? '').slice(-2000)}\nCheck access to the Go module proxy (GOPROXY), or set ${tool.env}.`);
  }
  // Renamed into place: an interrupted build never leaves a half-written binary behind.
  renameSync(join(gobin, name), binary);
  rmSync(gobin, { recursive: true, force: true });
  return binary;
}

export function ensureHelmTools() {
  return { helm: ensureTool('helm'), kubeconform: ensureTool('kubeconform') };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(ensureHelmTools())}\n`);
}
