import type { RunView } from '@podflow/client';

// Issue 15: files come back in the order they were written, not by name. The seeds' own example:
// five files written back to back (so they share a clock tick), one of them in a subdirectory
// created just before it. One node per language writes them.
export const WRITTEN_ORDER = ['z1.txt', 'm1.txt', 'a1.txt', 'sub/b.txt', '0.txt'];

const list = JSON.stringify(WRITTEN_ORDER);
const nodeCode = `const fs = require("node:fs");\nfunction main() {\n  for (const name of ${list}) {\n    if (name.includes("/")) fs.mkdirSync(name.split("/")[0], { recursive: true });\n    fs.writeFileSync(name, name);\n  }\n  return { wrote: ${WRITTEN_ORDER.length} };\n}\n`;

export const writtenOrderWorkflow = {
  id: 'written-order',
  nodes: [
    {
      id: 'py',
      language: 'python',
      code: `import os\n\ndef main():\n    for name in ${list}:\n        if "/" in name:\n            os.makedirs(os.path.dirname(name), exist_ok=True)\n        with open(name, "w") as f:\n            f.write(name)\n    return {"wrote": ${WRITTEN_ORDER.length}}\n`,
    },
    { id: 'js', language: 'javascript', code: nodeCode },
    { id: 'ts', language: 'typescript', code: nodeCode.replace('function main()', 'function main(): { wrote: number }') },
  ],
};

/** The file paths of each node of a finished run of writtenOrderWorkflow. */
export function writtenOrderOf(run: RunView): Record<string, string[]> {
  return Object.fromEntries(['py', 'js', 'ts'].map((id) => [id, (run.nodes[id]?.files?.elements ?? []).map((file) => file.path)]));
}
