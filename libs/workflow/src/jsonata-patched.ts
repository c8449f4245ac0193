import type jsonataType from 'jsonata';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { mergeSort } from './merge-sort';
import { MAX_PATTERN_LENGTH } from './regex-engine';

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

/** The JSONata release the changes below were written against; any other is refused at start-up. */
export const JSONATA_VERSION = '2.2.2';

/**
 * podflow's own error codes, thrown from the changed source as JSONata throws its own (an object
 * with a code), named after the nearest JSONata code. expressions.ts says which setting each is.
 */
export const PODFLOW_CODES = {
  /** A path with @ or # bindings made more bindings than an eighth of the sequence limit. */
  bindings: 'P2015',
  /** A truth test or a deep comparison walked more than WALK_LIMIT values in one step. */
  walk: 'P2016',
  /** A $toMillis picture made a regular expression longer than RE2 takes. */
  picture: 'P2017',
} as const;

/**
 * Helpers the changes call, added once to JSONata's source. `podflowSequentially` evaluates
 * `items` one after another, in order, as `Promise.all(items.map(fn))` would in parallel;
 * `podflowCheckBindings` refuses a tuple stream about to hold more than an eighth of the sequence
 * limit (each binding is an object of a few hundred bytes: the sequence limit's 1M held 228 MB).
 */
const HELPERS = `
    async function podflowSequentially(items, fn) {
        var results = [];
        for (var index = 0; index < items.length; index++) {
            results.push(await fn(items[index], index));
        }
        return results;
    }
    function podflowCheckBindings(environment, count) {
        var options = environment.base.options;
        if (options && options.sequence && count > options.sequence / 8) {
            var most = Math.floor(options.sequence / 8);
            throw { code: "${PODFLOW_CODES.bindings}", stack: (new Error()).stack, value: most, message: "a path with @ or # bindings made more than " + most + " bindings" };
        }
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
    why: 'an array constructor gathers its items in one array instead of copying it per item',
    // fn.append is concat: once per item, quadratic ([$x, $x, ...] with 2,500 items took 4.9 s in
    // one step). The same result: the constructor's own plain array, an array's items joined one by one.
    from: `                        if(item.value === '[') {
                            result.push(value);
                        } else {
                            result = fn.append.call(focus, result, value);
                        }`,
    to: `                        if(item.value === '[') {
                            result.push(value);
                        } else {
                            var joining = Array.isArray(value) ? value : [value];
                            if (focus.options && result.length + joining.length > focus.options.sequence) {
                                throw { code: "D2015", stack: (new Error()).stack, value: result.length + joining.length };
                            }
                            for (var jj = 0; jj < joining.length; jj++) result.push(joining[jj]);
                        }`,
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
    why: 'the helpers the changes call',
    from: `    function reduceTupleStream(tupleStream, environment) {`,
    to: `${HELPERS}
    function reduceTupleStream(tupleStream, environment) {`,
  },
  {
    why: 'every function call checks the time limit, as every evaluation step does',
    // A built-in passed to $map, $filter, $reduce, ... is called by JSONata's apply, which no
    // step hook sees: $map($P, $boolean) over a large $P ran 2.4 s under a 1 s limit.
    from: `    async function applyInner(proc, args, input, environment) {
        var result;
        try {`,
    to: `    async function applyInner(proc, args, input, environment) {
        var result;
        try {
            if (environment && environment.base && environment.base.guardrails) environment.base.guardrails();`,
  },
  {
    why: 'the order-by operator sorts with podflow\'s merge sort (merge-sort.ts)',
    // JSONata's merge awaits one recursive call per merged item and copies the rest of a list at
    // each: [1..35000]^($) held ~580 MB of heap. The comparator evaluates the sort terms, so the
    // time limit is still checked at every comparison.
    from: `        result = await fn.sort.apply(focus, [lhs, comparator]);`,
    to: `        result = Array.isArray(lhs) && lhs.length > 1 ? await podflowMergeSort(lhs, comparator, function () {}) : await fn.sort.apply(focus, [lhs, comparator]);`,
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
    // No engine means no bound: refused rather than run on RegExp (JSONata's own default when no
    // RegexEngine option is given; podflow always gives RE2). RE2 takes patterns of at most
    // MAX_PATTERN_LENGTH characters, which a picture of many word components can pass.
    to: `        const PodflowRegExp = this && this.environment && this.environment.base && this.environment.base.RegexEngine;
        if (!PodflowRegExp || PodflowRegExp === RegExp) throw new Error("podflow: $toMillis was called without the evaluation's regular expression engine (RE2)");
        if (fullRegex.length > ${MAX_PATTERN_LENGTH}) {
            throw { code: "${PODFLOW_CODES.picture}", stack: (new Error()).stack, message: "$toMillis: the picture " + JSON.stringify(picture.slice(0, 100)) + " makes a pattern of " + fullRegex.length + " characters to match, over the ${MAX_PATTERN_LENGTH} RE2 takes; use a picture with fewer components" };
        }
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
            throw { code: "${PODFLOW_CODES.walk}", stack: (new Error()).stack, message: ${JSON.stringify(walkMessage('the truth of a value'))} };
        }
        // cast arg to its effective boolean value`,
  },
  {
    why: 'the truth of a list is found by testing its items in order until one is true',
    // Inside the walk the recursion calls podflowBoolean itself: through boolean it took two
    // frames per level, and a deep nest overflowed the stack where JSONata's did not.
    from: `            if (arg.length === 1) {
                result = boolean(arg[0]);
            } else if (arg.length > 1) {
                var trues = arg.filter(function (val) {
                    return boolean(val);
                });
                result = trues.length > 0;`,
    to: `            if (arg.length === 1) {
                result = podflowBoolean(arg[0]);
            } else if (arg.length > 1) {
                result = arg.some(function (val) {
                    return podflowBoolean(val);
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
            throw { code: "${PODFLOW_CODES.walk}", stack: (new Error()).stack, message: ${JSON.stringify(walkMessage('a comparison with = or !='))} };
        }
        if (lhs === rhs) {`,
  },
  {
    why: 'a deep comparison of lists recurses within its walk',
    from: `                    if(!isDeepEqual(lhs[ii], rhs[ii])) {`,
    to: `                    if(!podflowIsDeepEqual(lhs[ii], rhs[ii])) {`,
  },
  {
    why: 'a deep comparison of objects recurses within its walk',
    from: `                if(!isDeepEqual(lhs[key], rhs[key])) {`,
    to: `                if(!podflowIsDeepEqual(lhs[key], rhs[key])) {`,
  },
  {
    why: 'an order-by step starting a tuple stream holds at most an eighth of the sequence limit',
    from: `                var sorted = await evaluateSortExpression(expr, input, environment);
                result = environment.base.createSequence();`,
    to: `                var sorted = await evaluateSortExpression(expr, input, environment);
                podflowCheckBindings(environment, sorted.length);
                result = environment.base.createSequence();`,
  },
  {
    why: 'the first step of a tuple stream holds at most an eighth of the sequence limit',
    from: `            tupleBindings = input.map(item => { return {'@': item} });`,
    to: `            podflowCheckBindings(environment, input.length);
            tupleBindings = input.map(item => { return {'@': item} });`,
  },
  {
    why: 'a tuple stream (a path with @ or # bindings) holds at most an eighth of the sequence limit',
    // One object of a few hundred bytes per tuple: the sequence limit's 1M tuples held 228 MB.
    from: `                    result.push(tuple);
                }
            }
        }

        if(expr.stages) {`,
    to: `                    podflowCheckBindings(environment, result.length + 1);
                    result.push(tuple);
                }
            }
        }

        if(expr.stages) {`,
  },
];

/**
 * `source` with every patch made, each where its text is found exactly once.
 * @throws Error naming the version when it is not JSONATA_VERSION, or the patch, the file and the
 * version when one does not apply.
 */
export function patchSource(source: string, patches: readonly SourcePatch[], file: string, version: string): string {
  if (version !== JSONATA_VERSION) {
    throw new Error(`podflow's changes to JSONata were written for ${JSONATA_VERSION}, and ${file} is jsonata ${version}: install ${JSONATA_VERSION}, or check each change in libs/workflow/src/jsonata-patched.ts against ${version}`);
  }
  for (const patch of patches) {
    const at = source.indexOf(patch.from);
    if (at < 0 || source.indexOf(patch.from, at + 1) >= 0) {
      throw new Error(`podflow's change to JSONata "${patch.why}" does not apply to ${file} (jsonata ${version}): its text is ${at < 0 ? 'not there' : 'there more than once'}; see libs/workflow/src/jsonata-patched.ts`);
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
  // A function of this realm (the caller's, under a test runner's sandbox too). The source URL is
  // a name of its own: line numbers in stack traces are the patched file's, not jsonata.js's.
  const wrapper = new Function('exports', 'require', 'module', '__filename', '__dirname', 'podflowMergeSort', `${source}\n//# sourceURL=podflow/jsonata-${version}-patched.js`) as (
    exports: unknown,
    require: NodeRequire,
    module: { exports: unknown },
    filename: string,
    dirname: string,
    podflowMergeSort: typeof mergeSort,
  ) => void;
  wrapper(module.exports, createRequire(file), module, file, dirname(file), mergeSort);
  return module.exports as typeof jsonataType;
}

/** JSONata with podflow's changes (JSONATA_PATCHES), loaded once. */
export const jsonata: typeof jsonataType = load();
