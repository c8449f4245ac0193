import type { ChildProcess } from 'node:child_process';
import { freePort, type Stack } from './stack';

/**
 * Extra coordinators that kill themselves with SIGKILL right after their Nth commit, before they
 * carry out its commands (PODFLOW_FAULT_KILL_AFTER_COMMITS = `killAfter(kills, slot)`), each
 * started again at once, in `slots` loops until `stop()`. The stack's own coordinator never dies.
 */
export class CrashingCoordinators {
  kills = 0;
  /** The first crashing coordinator that exited other than by its SIGKILL (a real crash), with the logs. */
  unexpectedExit?: Error;
  private stopping = false;
  private readonly running = new Set<ChildProcess>();
  private readonly loops: Array<Promise<void>>;

  constructor(
    private readonly stack: Stack,
    slots: number,
    private readonly killAfter: (kills: number, slot: number) => number,
  ) {
    this.loops = Array.from({ length: slots }, (_, slot) => this.loop(slot));
  }

  private async loop(slot: number): Promise<void> {
    while (!this.stopping) {
      // Not waited for: with a kill after its first commit, it may die before it answers /readyz.
      const child = this.stack.spawnCoordinator({ PORT: String(await freePort()), PODFLOW_FAULT_KILL_AFTER_COMMITS: String(this.killAfter(this.kills, slot)) });
      this.running.add(child);
      await new Promise((resolve) => child.once('exit', resolve));
      this.running.delete(child);
      if (child.signalCode === 'SIGKILL') this.kills += 1;
      else if (!this.stopping) this.unexpectedExit ??= new Error(`a crashing coordinator exited with ${child.exitCode} instead of being killed:\n${this.stack.logs().slice(-3000)}`);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const child of this.running) child.kill('SIGKILL');
    await Promise.allSettled(this.loops);
  }
}
