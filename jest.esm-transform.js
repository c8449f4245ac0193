// Jest runs our suites as CommonJS, but @kubernetes/client-node 1.x and a few of its dependencies
// ship only ES modules (Node 20.19+ loads them through require(esm); Jest's module system does
// not). This transformer turns exactly those files into CommonJS with esbuild, already a dev
// dependency for the runner bundle. The list lives in jest.preset.js (ESM_ONLY_PACKAGES).
const { transformSync } = require('esbuild');
const { createHash } = require('node:crypto');

module.exports = {
  process(source, filename) {
    const { code, map } = transformSync(source, { format: 'cjs', loader: 'js', target: 'node20', sourcemap: 'external', sourcefile: filename });
    return { code, map };
  },
  getCacheKey(source, filename) {
    return createHash('sha256').update('esm-to-cjs-1').update(filename).update(source).digest('hex');
  },
};
