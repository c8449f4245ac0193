// Loaded into a service with NODE_OPTIONS=--import=<this file> (orchestration.mjs does it for the
// coordinator when BENCH_ORCH_CPU_PROF is set). SIGWINCH starts V8's CPU profiler, so start-up and
// warm-up stay out of the profile; SIGTERM stops it and writes BENCH_CPU_PROF_FILE before the
// service's own shutdown. SIGWINCH, because its default action is to do nothing and Nest's
// shutdown hooks listen to SIGUSR2. `--cpu-prof` is no use here: it writes only on a normal exit,
// and Nest ends the process by re-raising the signal.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const file = process.env.BENCH_CPU_PROF_FILE;
const intervalUs = Number(process.env.BENCH_CPU_PROF_INTERVAL_US ?? 250);

if (file) {
  const session = new Session();
  session.connect();
  let profiling = false;
  process.on('SIGWINCH', () => {
    if (profiling) return;
    profiling = true;
    // An inspector session on the same thread answers synchronously: the profiler runs on return.
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: intervalUs });
    session.post('Profiler.start');
  });
  process.prependListener('SIGTERM', () => {
    if (!profiling) return;
    profiling = false;
    session.post('Profiler.stop', (error, result) => {
      if (error) process.stderr.write(`cpu profile not written: ${error.message}\n`);
      else writeFileSync(file, JSON.stringify(result.profile));
    });
  });
}
