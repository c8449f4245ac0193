// Helpers for tests of the sandbox boundary (`@podflow/sandbox/testing`); not part of the runtime API.
export { forgedPythonAnswer } from './forged-answer';
