/**
 * @podflow/protocol: the contract every podflow process shares. Queue names, job, result and
 * event payloads, the runner protocol and the error taxonomy of DESIGN.md.
 *
 * ```ts
 * import { QUEUE_NAMES, type ExecJob, PodflowError } from '@podflow/protocol';
 * ```
 */
export { ERROR_CODES, PodflowError, isErrorCode, retryPolicyOf } from './errors';
export type { ErrorCode, NodeError, RetryPolicy } from './errors';
export { NODE_PHASES, RUN_PHASES, TERMINAL_NODE_PHASES, TERMINAL_RUN_PHASES, isTerminalNodePhase, isTerminalRunPhase } from './phases';
export type { NodePhase, RunPhase } from './phases';
export type { JsonObject, JsonPrimitive, JsonValue } from './json';
export { LANGUAGES, executionIdOf } from './exec';
export type { CapturedLogs, ExecJob, ExecResult, ExecTimings, FileElement, Language, NodeFiles, Resources } from './exec';
export { DEFAULT_KEY_PREFIX, MAX_RESULTS_PER_MESSAGE, QUEUE_NAMES, cancelChannel, canceledSetKey, keyPrefixProblem, queuePrefix, resultJobId, runEventsChannel } from './queues';
export type { FinishedReport, ResultMessage, SubmissionMessage } from './queues';
export { COMPLETION_FIELD, MAX_CORRELATION_ID_CHARS, REPLY_TARGET_PATTERN, replyStreamKey, replyTargetProblem } from './completions';
export type { RunCompletion } from './completions';
export { parseCpuQuantity, parseMemoryQuantity } from './quantities';
export { SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS, signatureHeader, verifySignature } from './webhook-signature';
export { DEFAULT_RUNNER_LIMITS, fileFrameMarker, filesEndMarker, requestReceivedMarker, responseEndMarker, responseStartMarker } from './runner';
export type { RunnerFile, RunnerLimits, RunnerRequest, RunnerResponse } from './runner';
export { FILE_PATH_EXAMPLES, FILE_PATH_RULE, MAX_FILE_NAME_BYTES, MAX_FILE_PATH_BYTES, unstorableFilesError, unstorablePathReason } from './file-paths';
export type { UnstorableFile } from './file-paths';
export type { RunEventMessage } from './events';
export { DEFAULT_OUTPUT_INLINE_MAX_BYTES, PAYLOAD_CONTENT_TYPE } from './payloads';
export type { PayloadRef } from './payloads';
export { emptyRecord, ownValue, recordOf, setOwn } from './records';
export { MAX_JSON_DEPTH, MAX_OUTPUT_DEPTH, findTooDeep } from './json-depth';
export { MAX_ERROR_TEXT_CHARS, boundNodeError, truncateText } from './error-bounds';
export { NO_LOGS, failedResult, resultBase } from './exec-results';
export type { ExecTimes } from './exec-results';
export { givenUpOf, givenUpResult } from './given-up';
export type { GivenUp } from './given-up';
