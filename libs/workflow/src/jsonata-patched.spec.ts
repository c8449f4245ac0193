import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JSONATA_PATCHES, JSONATA_VERSION, jsonata, patchSource } from './jsonata-patched';

describe('JSONata as podflow loads it', () => {
  const file = require.resolve('jsonata');
  const published = readFileSync(file, 'utf8');

  it('applies every change to the published file exactly once, and evaluates', async () => {
    const patched = patchSource(published, JSONATA_PATCHES, file, '2.2.2');
    for (const patch of JSONATA_PATCHES) expect({ why: patch.why, present: patched.includes(patch.to) }).toEqual({ why: patch.why, present: true });
    expect(await jsonata('$sum([1..4])').evaluate({})).toBe(10);
  });

  it('refuses to load a JSONata where a change does not apply, naming it (an upgrade must look at them again)', () => {
    const [first] = JSONATA_PATCHES;
    expect(() => patchSource(published.replace(first!.from, ''), JSONATA_PATCHES, file, '2.2.2')).toThrow(
      `podflow's change to JSONata "${first!.why}" does not apply to ${file} (jsonata 2.2.2): its text is not there`,
    );
    expect(() => patchSource(published + first!.from, JSONATA_PATCHES, file, '2.2.2')).toThrow(/its text is there more than once/);
  });

  it('refuses any JSONata release but the one the changes were written for, even where every change applies', () => {
    expect(JSONATA_VERSION).toBe((JSON.parse(readFileSync(join(dirname(file), 'package.json'), 'utf8')) as { version: string }).version);
    expect(() => patchSource(published, JSONATA_PATCHES, file, '2.2.3')).toThrow(
      `podflow's changes to JSONata were written for 2.2.2, and ${file} is jsonata 2.2.3: install 2.2.2, or check each change in libs/workflow/src/jsonata-patched.ts against 2.2.3`,
    );
  });

  it('refuses $toMillis with a picture rather than run it on a backtracking RegExp when no RE2 engine was given (podflow always gives one)', async () => {
    await expect(jsonata('$toMillis("2024", "[Y]")').evaluate({})).rejects.toThrow("podflow: $toMillis was called without the evaluation's regular expression engine (RE2)");
  });
});
