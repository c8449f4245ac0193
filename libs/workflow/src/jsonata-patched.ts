import type jsonataType from 'jsonata';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

/**
 * JSONata as podflow runs it: the library's own file, with the changes below made to its source
 * when it is loaded. The coordinator evaluates tenants' expressions, and these spots in JSONata
 * 2.2.2 let one short expression hold the event loop for minutes or exhaust the heap; the library
 * has no hook at any of them. Each change keeps JSONata's results (expression-bounds.spec.ts
 * compares them with the library as published). A change whose text is not found exactly once
 * stops the coordinator at start-up, naming it: a JSONata upgrade must look at these again.
 */
export interface SourcePatch {
  why: string;
  from: string;
  to: string;
}

/**
 * Most values one truth test or one deep comparison walks in a single step (where the time limit
 * is not checked). Data as large as a run's inputs and outputs can be stays far below it; only
 * one value reached many times over (a path repeating a reference) gets there.
 */
export const WALK_LIMIT = 16 * 1024 * 1024;

function walkMessage(what: string): string {
  return `${what} walked more than ${WALK_LIMIT} values in one step, which only a value repeated many times over reaches; compare or test something smaller`;
}

/** Evaluates `items` one after another, in order, as `Promise.all(items.map(fn))` would in parallel. */
const SEQUENTIALLY = `
    async function podflowSequentially(items, fn) {
        var results = [];
        for (var index = 0; index < items.length; index++) {
            results.push(await fn(items[index], index));
        }
        return results;
    }
`;

export const JSONATA_PATCHES: readonly SourcePatch[] = [
  {
    why: 'array constructor items are evaluated one after another',
    // Side by side, every item's step is under way at once: N items counted as N nested steps
    // against the depth limit (600 literal items failed it), and the values the items build are
    // all alive together (24 tuple streams of 1M items exhausted a 4 GB heap).
    from: `                let generators = await Promise.all(expr.expressions
                    .map(async (item, idx) => {
                        environment.isParallelCall = idx > 0
                        return [item, await evaluate(item, input, environment)]
                    }));`,
    to: `                let generators = await podflowSequentially(expr.expressions, async (item, idx) => {
                        environment.isParallelCall = idx > 0
                        return [item, await evaluate(item, input, environment)]
                    });`,
  },
  {
    why: 'group-by and object constructor values are evaluated one group after another',
    // The same for groups: a group-by into 1,000 groups failed the depth limit ("Stack overflow").
    from: `        let generators = await Promise.all(utils.keys(groups).map(async (key, idx) => {`,
    to: `        let generators = await podflowSequentially(utils.keys(groups), async (key, idx) => {`,
  },
  {
    why: 'the end of the group-by loop that the previous change opens',
    from: `            return [key, await evaluate(expr.lhs[entry.exprIndex][1], context, env)];
        }));`,
    to: `            return [key, await evaluate(expr.lhs[entry.exprIndex][1], context, env)];
        });`,
  },
  {
    why: 'the helper the two changes above call',
    from: `    function reduceTupleStream(tupleStream, environment) {`,
    to: `${SEQUENTIALLY}
    function reduceTupleStream(tupleStream, environment) {`,
  },
  {
    why: 'a group-by over a tuple stream gathers each binding in one array instead of copying it per tuple',
    // fn.append is concat: once per tuple, quadratic (a group-by over 1M tuples: 96 s in one step).
    from: `        Object.assign(result, tupleStream[0]);
        for(var ii = 1; ii < tupleStream.length; ii++) {
            for(const prop of utils.keys(tupleStream[ii])) {
                result[prop] = fn.append.call(focus, result[prop], tupleStream[ii][prop]);
            }
        }
        return result;`,
    to: `        Object.assign(result, tupleStream[0]);
        // As fn.append gives: undefined is skipped, a value joins as an item, an array's items
        // join one by one; once anything was appended the binding is a plain array.
        var gathered = Object.create(null);
        for(var ii = 1; ii < tupleStream.length; ii++) {
            for(const prop of utils.keys(tupleStream[ii])) {
                var more = tupleStream[ii][prop];
                if (typeof more === 'undefined') continue;
                if (typeof result[prop] === 'undefined') { result[prop] = more; continue; }
                if (!gathered[prop]) {
                    gathered[prop] = Array.isArray(result[prop]) ? Array.prototype.slice.call(result[prop]) : [result[prop]];
                    result[prop] = gathered[prop];
                }
                var into = gathered[prop];
                if (Array.isArray(more)) { for (var mm = 0; mm < more.length; mm++) into.push(more[mm]); } else { into.push(more); }
                if (focus.options && into.length > focus.options.sequence) {
                    throw { code: "D2015", stack: (new Error()).stack, value: into.length };
                }
            }
        }
        return result;`,
  },
  {
    why: 'the wildcard gathers the values of all keys in one sequence instead of copying it per key',
    // Once per key, quadratic: $o.* over 60,000 keys of ten items each held the event loop 87 s.
    from: `        if (input !== null && typeof input === 'object' && !isFunction(input)) {
            utils.keys(input).forEach(function (key) {
                var value = input[key];
                if(Array.isArray(value)) {
                    value = flatten(value);
                    results = fn.append.call(focus, results, value);
                } else {
                    results.push(value);
                }
            });
        }`,
    to: `        if (input !== null && typeof input === 'object' && !isFunction(input)) {
            var gathering = false;
            utils.keys(input).forEach(function (key) {
                var value = input[key];
                if(Array.isArray(value)) {
                    value = flatten(value);
                    // fn.append (concat) would have made it a plain array, even for no items.
                    if (!gathering) { results = Array.prototype.slice.call(results); gathering = true; }
                    for (var vv = 0; vv < value.length; vv++) results.push(value[vv]);
                    if (focus.options && results.length > focus.options.sequence) {
                        throw { code: "D2015", stack: (new Error()).stack, value: results.length };
                    }
                } else {
                    results.push(value);
                }
            });
        }`,
  },
  {
    why: 'a timestamp is parsed by a picture with the evaluation\'s regular expression engine (RE2)',
    // JSONata builds a regular expression from the picture and runs it with "new RegExp":
    // "[f][f]..." becomes "([0-9]+)([0-9]+)...", which backtracks for minutes on 40 digits and an
    // x, inside one step no timeout interrupts. The RegexEngine option is used for everything else.
    from: `        const matcher = new RegExp(fullRegex, 'i'); // TODO can cache this against the picture`,
    to: `        const PodflowRegExp = (this && this.environment && this.environment.base && this.environment.base.RegexEngine) || RegExp;
        const matcher = new PodflowRegExp(fullRegex, 'i');`,
  },
  {
    why: 'the truth of a value stops at its first true item and walks at most WALK_LIMIT values in one call',
    // A path can return 100,000 references to one array of a million items, built in
    // milliseconds; a condition, a predicate, and/or or $boolean then walked all 1e11 items in one
    // step (still running after 60 s). Items are tested in order until one is true, as before.
    from: `    function boolean(arg) {
        // cast arg to its effective boolean value`,
    to: `    var podflowBooleanWalk = { left: 0 };
    function boolean(arg) {
        if (podflowBooleanWalk.left > 0) return podflowBoolean(arg);
        podflowBooleanWalk.left = ${WALK_LIMIT};
        try { return podflowBoolean(arg); } finally { podflowBooleanWalk.left = 0; }
    }
    function podflowBoolean(arg) {
        if (--podflowBooleanWalk.left <= 0) {
            throw { code: "P1012", stack: (new Error()).stack, message: ${JSON.stringify(walkMessage('the truth of a value'))} };
        }
        // cast arg to its effective boolean value`,
  },
  {
    why: 'the truth of a list is found by testing its items in order until one is true',
    from: `                var trues = arg.filter(function (val) {
                    return boolean(val);
                });
                result = trues.length > 0;`,
    to: `                result = arg.some(function (val) {
                    return boolean(val);
                });`,
  },
  {
    why: 'deep equality (= and !=) walks at most WALK_LIMIT values in one comparison',
    // [1..100000].$b1 = [1..100000].$b2 over two equal arrays of a million items: ~450 s in one step.
    from: `    function isDeepEqual(lhs, rhs) {
        if (lhs === rhs) {`,
    to: `    var podflowEqualWalk = { left: 0 };
    function isDeepEqual(lhs, rhs) {
        if (podflowEqualWalk.left > 0) return podflowIsDeepEqual(lhs, rhs);
        podflowEqualWalk.left = ${WALK_LIMIT};
        try { return podflowIsDeepEqual(lhs, rhs); } finally { podflowEqualWalk.left = 0; }
    }
    function podflowIsDeepEqual(lhs, rhs) {
        if (--podflowEqualWalk.left <= 0) {
            throw { code: "P1012", stack: (new Error()).stack, message: ${JSON.stringify(walkMessage('a comparison with = or !='))} };
        }
        if (lhs === rhs) {`,
  },
  {
    why: 'a tuple stream (a path with @ or # bindings) holds at most an eighth of the sequence limit',
    // One object of a few hundred bytes per tuple: the sequence limit's 1M tuples held 228 MB.
    from: `                    result.push(tuple);
                }
            }
        }

        if(expr.stages) {`,
    to: `                    if (environment.base.options && environment.base.options.sequence && result.length >= environment.base.options.sequence / 8) {
                        throw { code: "P2015", stack: (new Error()).stack, value: Math.floor(environment.base.options.sequence / 8), message: "a path with @ or # bindings made more than " + Math.floor(environment.base.options.sequence / 8) + " bindings" };
                    }
                    result.push(tuple);
                }
            }
        }

        if(expr.stages) {`,
  },
];

/**
 * `source` with every patch made, each where its text is found exactly once.
 * @throws Error naming the patch, the file and the version when one does not apply.
 */
export function patchSource(source: string, patches: readonly SourcePatch[], file: string, version: string): string {
  for (const patch of patches) {
    const at = source.indexOf(patch.from);
    if (at < 0 || source.indexOf(patch.from, at + 1) >= 0) {
      throw new Error(`podflow's change to JSONata "${patch.why}" does not apply to ${file} (jsonata ${version}, written for 2.2.2): its text is ${at < 0 ? 'not there' : 'there more than once'}; see libs/workflow/src/jsonata-patched.ts`);
    }
    source = source.slice(0, at) + patch.to + source.slice(at + patch.from.length);
  }
  return source;
}

function load(): typeof jsonataType {
  const file = require.resolve('jsonata');
  const version = (createRequire(file)('./package.json') as { version: string }).version;
  const source = patchSource(readFileSync(file, 'utf8'), JSONATA_PATCHES, file, version);
  const module = { exports: {} as unknown };
  // A function of this realm (the caller's, under a test runner's sandbox too), named for stack traces.
  const wrapper = new Function('exports', 'require', 'module', '__filename', '__dirname', `${source}\n//# sourceURL=${file}?patched-by-podflow`) as (
    exports: unknown,
    require: NodeRequire,
    module: { exports: unknown },
    filename: string,
    dirname: string,
  ) => void;
  wrapper(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports as typeof jsonataType;
}

/** JSONata with podflow's changes (JSONATA_PATCHES), loaded once. */
export const jsonata: typeof jsonataType = load();
