import { PodflowError } from '@podflow/protocol';
import type { ValidationIssue } from './types';

/** One issue as one line: `<where> <path>: <message>`. */
export function formatIssue(issue: ValidationIssue): string {
  return `${issue.where ? `${issue.where} ` : ''}${issue.path}: ${issue.message}`;
}

/**
 * A definition failed validation; `details.issues` lists every problem, the message too. The code
 * is `INVALID_DEPENDENCY` when every issue is about a declared dependency, else `INVALID_WORKFLOW`.
 */
export class InvalidWorkflowError extends PodflowError {
  readonly issues: ValidationIssue[];

  constructor(issues: ValidationIssue[], workflowId?: string) {
    const subject = workflowId ? `workflow "${workflowId}"` : 'workflow definition';
    const count = issues.length === 1 ? '1 issue' : `${issues.length} issues`;
    const onlyDependencies = issues.length > 0 && issues.every((issue) => issue.code === 'INVALID_DEPENDENCY');
    const summary = onlyDependencies ? `${subject} declares dependencies that cannot be installed (${count}):` : `${subject} is invalid (${count}):`;
    super(onlyDependencies ? 'INVALID_DEPENDENCY' : 'INVALID_WORKFLOW', [summary, ...issues.map(formatIssue)].join('\n'), { issues });
    this.name = 'InvalidWorkflowError';
    this.issues = issues;
  }
}
