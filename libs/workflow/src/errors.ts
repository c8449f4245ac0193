import { PodflowError } from '@podflow/protocol';
import type { ValidationIssue } from './types';

/** One issue as one line: `<where> <path>: <message>`. */
export function formatIssue(issue: ValidationIssue): string {
  return `${issue.where ? `${issue.where} ` : ''}${issue.path}: ${issue.message}`;
}

/** A definition failed validation; `details.issues` lists every problem, the message too. */
export class InvalidWorkflowError extends PodflowError {
  readonly issues: ValidationIssue[];

  constructor(issues: ValidationIssue[], workflowId?: string) {
    const subject = workflowId ? `workflow "${workflowId}"` : 'workflow definition';
    const count = issues.length === 1 ? '1 issue' : `${issues.length} issues`;
    super('INVALID_WORKFLOW', [`${subject} is invalid (${count}):`, ...issues.map(formatIssue)].join('\n'), { issues });
    this.name = 'InvalidWorkflowError';
    this.issues = issues;
  }
}
