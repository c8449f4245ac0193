// End-to-end tests start processes and wait for runs; `testTimeout` is a global Jest option that a
// project config cannot set, so it is set here for this project.
jest.setTimeout(120_000);
