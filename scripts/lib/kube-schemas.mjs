// JSON schemas for kubeconform, made from a live cluster's own OpenAPI (GET /openapi/v2): the
// published schema sets are downloaded from GitHub, which these machines cannot reach, and the
// cluster's are exactly right for the version under test. As kubeconform's openapi2jsonschema
// does in --strict mode, objects with declared properties refuse unknown ones (a typo in a
// template fails), and int-or-string and quantities accept both forms.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Writes `<dir>/_definitions.json` and one `<kind>-<group>-<version>.json` per resource kind; returns the kubeconform -schema-location template. */
export function writeKubeconformSchemas(swagger, dir) {
  mkdirSync(dir, { recursive: true });
  const definitions = {};
  for (const [name, schema] of Object.entries(swagger.definitions)) definitions[name] = strict(fixSpecial(name, schema));
  writeFileSync(join(dir, '_definitions.json'), JSON.stringify({ definitions }));
  for (const [name, schema] of Object.entries(swagger.definitions)) {
    for (const gvk of schema['x-kubernetes-group-version-kind'] ?? []) {
      // kubeconform's {{ .Group }} of a core resource (apiVersion v1) is the version itself.
      const file = `${gvk.kind.toLowerCase()}-${gvk.group || gvk.version}-${gvk.version}.json`;
      writeFileSync(join(dir, file), JSON.stringify({ $ref: `_definitions.json#/definitions/${name}` }));
    }
  }
  return join(dir, '{{ .ResourceKind }}-{{ .Group }}-{{ .ResourceAPIVersion }}.json');
}

function fixSpecial(name, schema) {
  if (name === 'io.k8s.apimachinery.pkg.util.intstr.IntOrString') return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  if (name === 'io.k8s.apimachinery.pkg.api.resource.Quantity') return { oneOf: [{ type: 'string' }, { type: 'number' }] };
  return schema;
}

/** Adds additionalProperties: false to every object schema that lists its properties (recursively). */
function strict(schema) {
  if (!schema || typeof schema !== 'object') return schema;
  if (Array.isArray(schema)) return schema.map(strict);
  const out = {};
  for (const [key, value] of Object.entries(schema)) out[key] = key === 'properties' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strict(v)])) : strict(value);
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  return out;
}

// Run directly: `node kube-schemas.mjs <swagger.json> <dir>` prints the -schema-location template.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [swaggerFile, dir] = process.argv.slice(2);
  process.stdout.write(`${writeKubeconformSchemas(JSON.parse(readFileSync(swaggerFile, 'utf8')), dir)}\n`);
}
