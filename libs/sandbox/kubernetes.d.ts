// Types of `@podflow/sandbox/kubernetes` (see kubernetes.js).
export * from './dist/kubernetes/index';
