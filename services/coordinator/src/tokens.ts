/** Nest injection tokens for values that are not classes. */
export const CONFIG = Symbol('CONFIG');
/** The shared command connection: a `RedisClient` (@podflow/redis), i.e. `Redis | Cluster`. */
export const REDIS = Symbol('REDIS');
/** The run store's own connection, auto-pipelined (many sessions issue commands at once); never given to BullMQ. */
export const STATE_REDIS = Symbol('STATE_REDIS');
export const LOGGER = Symbol('LOGGER');
export const EXEC_QUEUE = Symbol('EXEC_QUEUE');
export const RESULTS_QUEUE = Symbol('RESULTS_QUEUE');
export const OBJECT_STORE = Symbol('OBJECT_STORE');
