'use strict';
// `@podflow/sandbox/kubernetes` for Node's resolution (the package has no "exports" map: the
// workspace builds with classic module resolution). See src/kubernetes/index.ts.
module.exports = require('./dist/kubernetes/index.js');
