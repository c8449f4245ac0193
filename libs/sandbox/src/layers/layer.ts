import type { DependencyEcosystem } from '@podflow/workflow';
import { createHash } from 'node:crypto';

/** Where a dependency layer appears inside every sandbox, read-only (both drivers). */
export const LAYER_MOUNT_PATH = '/opt/podflow/layer';
/** Written last into a layer, before it is published: a directory without it is never trusted. */
export const LAYER_MANIFEST_FILE = '.podflow-layer.json';

/** Where a layer's packages come from (`@podflow/workflow` decides it from the language). */
export type Ecosystem = DependencyEcosystem;

/** What to build: one runtime plus one normalised, sorted set of package specs. */
export interface LayerSpec {
  key: string;
  runtimeId: string;
  ecosystem: Ecosystem;
  /** Canonical specs, sorted (the installer receives them as they are). */
  specs: string[];
}

/** Written into a published layer as `LAYER_MANIFEST_FILE`, and kept in the k8s layer registry. */
export interface LayerManifest {
  key: string;
  runtimeId: string;
  ecosystem: Ecosystem;
  specs: string[];
  sizeBytes: number;
  /** ISO-8601. */
  createdAt: string;
  /** Which process or pod built it, for operators. */
  builtBy: string;
}

/** A layer an execution will mount: where it comes from and how it was obtained. */
export interface ResolvedLayer {
  key: string;
  ecosystem: Ecosystem;
  /** Host directory of the layer (process driver); pods mount it from the layer volume instead. */
  hostPath?: string;
  /** `cache`: already published; `built`: this worker installed it; `shared`: waited for another builder. */
  source: 'cache' | 'built' | 'shared';
  /** Time spent resolving it, install or wait included. */
  resolveMs: number;
}

/**
 * The layer key (DESIGN.md "Dependency layers"): sha256 over the runtime (interpreter and its
 * version, or the runtime image) and the normalised, sorted specs. Same inputs, same layer.
 */
export function layerKey(runtimeId: string, ecosystem: Ecosystem, specs: readonly string[]): string {
  const canonical = JSON.stringify({ v: 1, runtime: runtimeId, ecosystem, specs: [...specs].sort() });
  return createHash('sha256').update(canonical).digest('hex');
}

/** The directory inside a layer the language imports from. */
export function layerImportDir(ecosystem: Ecosystem): string {
  return ecosystem === 'pypi' ? 'python' : 'node_modules';
}

/**
 * Environment that makes a layer mounted at `mountPath` importable: the Python runner adds
 * `PODFLOW_PYTHONPATH` to `sys.path` (it runs with `-I`, which ignores PYTHONPATH); the Node
 * runner resolves `require`/`import` through `NODE_PATH`.
 */
export function layerEnv(ecosystem: Ecosystem, mountPath: string): Record<string, string> {
  const dir = `${mountPath}/${layerImportDir(ecosystem)}`;
  return ecosystem === 'pypi' ? { PODFLOW_PYTHONPATH: dir } : { NODE_PATH: dir };
}

/** Parses and checks a manifest read back from disk or from a builder's log. */
export function parseLayerManifest(text: string, expectedKey: string): LayerManifest | undefined {
  try {
    const value = JSON.parse(text) as Partial<LayerManifest>;
    if (value.key !== expectedKey || typeof value.sizeBytes !== 'number' || !Array.isArray(value.specs)) return undefined;
    return value as LayerManifest;
  } catch {
    return undefined;
  }
}
