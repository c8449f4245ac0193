#!/usr/bin/env node
// `npm run test:k8s`: the Kubernetes suites of test/k8s against a real API server.
// - KUBECONFIG set: that cluster (kind, a cloud cluster, ...). It needs k8s/manifests/sandbox
//   applied and the runtime images (k8s/images) pullable; see k8s/local-cluster/README.md.
// - KUBECONFIG unset: podflow's local cluster, brought up first (`cluster:up` is idempotent and
//   takes seconds when it already runs), with the worker kubeconfig it writes.
// The suites that run podflow itself on the cluster also get a private redis-server and MinIO, as
// `npm test`.
// Extra arguments go to Jest.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, ensureInstalledAndBuilt, runJestWithServices, say } from './lib/services.mjs';
import { ADMIN_KUBECONFIG, WORKER_KUBECONFIG } from '../k8s/local-cluster/lib/config.mjs';

async function main() {
  ensureInstalledAndBuilt();
  const env = { ...process.env };
  if (env.KUBECONFIG) {
    say(`Kubernetes suites against KUBECONFIG=${env.KUBECONFIG} (test/helm/install.helm.spec.ts needs the local cluster's images and runs only there)`);
  } else {
    const up = spawnSync(process.execPath, [join(ROOT, 'k8s/local-cluster/cluster.mjs'), 'up'], { stdio: 'inherit', cwd: ROOT });
    if (up.status !== 0) {
      say('the local cluster did not come up (see above); set KUBECONFIG to use another cluster');
      process.exit(1);
    }
    env.KUBECONFIG = ADMIN_KUBECONFIG;
    env.PODFLOW_WORKER_KUBECONFIG = WORKER_KUBECONFIG;
    env.PODFLOW_LOCAL_CLUSTER = '1';
  }
  process.exit(await runJestWithServices(join(ROOT, 'test/k8s/jest.config.js'), process.argv.slice(2), env));
}

main().catch((error) => {
  say(`Kubernetes suites could not start: ${error.message}`);
  process.exit(1);
});
