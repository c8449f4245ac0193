import { PodflowError } from '@podflow/protocol';
import type { ValidationIssue } from './types';

/** One issue as one line: `<where> <path>: <message>`. */
export function formatIssue(issue: ValidationIssue): string {
  return `${issue.where ? `${issue.where} ` : ''}${issue.path}: ${issue.message}`;
}

/** Issues a 400 lists at most (the message says how many there were): a definition can hold thousands. */
export const MAX_REPORTED_ISSUES = 100;

/**
 * A definition failed validation; `details.issues` lists the problems (the first
 * MAX_REPORTED_ISSUES; `issues` keeps them all), the message too. The code
 * is `INVALID_DEPENDENCY` when every issue is about a declared dependency, else `INVALID_WORKFLOW`.
 */
export class InvalidWorkflowError extends PodflowError {
  readonly issues: ValidationIssue[];

  constructor(issues: ValidationIssue[], workflowId?: string) {
    const subject = workflowId ? `workflow "${workflowId}"` : 'workflow definition';
    const reported = issues.slice(0, MAX_REPORTED_ISSUES);
    const count = (issues.length === 1 ? '1 issue' : `${issues.length} issues`) + (reported.length < issues.length ? `; the first ${reported.length} follow` : '');
    const onlyDependencies = issues.length > 0 && issues.every((issue) => issue.code === 'INVALID_DEPENDENCY');
    const summary = onlyDependencies ? `${subject} declares dependencies that cannot be installed (${count}):` : `${subject} is invalid (${count}):`;
    super(onlyDependencies ? 'INVALID_DEPENDENCY' : 'INVALID_WORKFLOW', [summary, ...reported.map(formatIssue)].join('\n'), { issues: reported });
    this.name = 'InvalidWorkflowError';
    this.issues = issues;
  }
}
