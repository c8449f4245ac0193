import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { PodflowError } from '@podflow/protocol';
import { LuaScript, duplicateRedis, type RedisClient } from '@podflow/redis';
import type { Logger } from 'pino';
import { hashApiKey, type CoordinatorConfig } from '../config';
import { CONFIG, LOGGER, REDIS } from '../tokens';
import { TENANT_SETTINGS, keyView, newApiKey, newKeyId, tenantView, type ApiKeyRecord, type ApiKeyView, type TenantRecord, type TenantSettings } from './api-keys';

/** How long a key or tenant read from Redis is trusted without a change message: a revocation whose message was lost still applies within this. */
const CACHE_TTL_MS = 2_000;
/** Entries kept per cache (oldest first out): random wrong keys must not grow memory. */
const CACHE_MAX = 10_000;
/** A key's last use is written at most this often per coordinator. */
const LAST_USED_EVERY_MS = 60_000;
/** How long authentication waits for Redis before answering 503 (the client's queue holds commands while Redis is away). */
const AUTH_READ_TIMEOUT_MS = 2_000;

/** A Redis read for authentication: an error or a silence past AUTH_READ_TIMEOUT_MS is 503 UNAVAILABLE, never a hang or a 500. */
async function authRead<T>(read: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${AUTH_READ_TIMEOUT_MS} ms`)), AUTH_READ_TIMEOUT_MS);
  });
  try {
    return await Promise.race([read, timeout]);
  } catch (error) {
    throw new PodflowError('UNAVAILABLE', `cannot check the API key now: Redis did not answer (${(error as Error).message}); retry in a few seconds`);
  } finally {
    clearTimeout(timer);
  }
}

/** A stored record, or undefined when it is not JSON (a corrupt entry must not turn every request into a 500). */
function parseRecord<T>(json: string | null | undefined, logger: Logger, what: string): T | undefined {
  if (!json) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    logger.error({ what }, 'a stored tenant or key record is not JSON; it is treated as absent');
    return undefined;
  }
}

/**
 * Applies a change to a tenant record atomically (two PATCHes at once must not undo each other).
 * KEYS: tenants hash. ARGV: id, change JSON (fields to set; null removes), fallback record JSON
 * (a PODFLOW_API_KEYS tenant without a record yet) or "". Returns the new record, or false.
 */
const UPDATE_TENANT = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  if ARGV[3] == '' then return false end
  current = ARGV[3]
end
local record = cjson.decode(current)
local change = cjson.decode(ARGV[2])
for field, value in pairs(change) do
  if value == cjson.null then record[field] = nil else record[field] = value end
end
local encoded = cjson.encode(record)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return encoded
`);

/** Revokes a key unless it is revoked already. KEYS: keys hash. ARGV: key hash, now. Returns the record JSON, 0 if already revoked, false if absent. */
const REVOKE_KEY = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return false end
local record = cjson.decode(current)
if record.revokedAt ~= nil then return 0 end
record.revokedAt = tonumber(ARGV[2])
local encoded = cjson.encode(record)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return encoded
`);

class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; at: number }>();

  get(key: string, now: number): { value: V } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (now - entry.at > CACHE_TTL_MS) {
      this.entries.delete(key);
      return undefined;
    }
    return { value: entry.value };
  }

  set(key: string, value: V, now: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at: now });
    if (this.entries.size > CACHE_MAX) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}

export interface Caller {
  tenantId: string;
  /** sha256 of the key: identifies it for per-key limits without keeping it. */
  apiKeyId: string;
}

/**
 * Tenants and API keys as data, shared by every coordinator through Redis (`{a}` hash tag, one
 * slot, so an issue or a revocation is one MULTI): tenant records, key records by the key's
 * sha256, key ids, each tenant's key ids, last uses. PODFLOW_API_KEYS stays a bootstrap source.
 * Reads are cached for CACHE_TTL_MS; a change is published on `<prefix>:auth-changes` and drops
 * the entry on every coordinator at once, so a revoked key or a disabled tenant is refused
 * everywhere within milliseconds (within CACHE_TTL_MS should the message be lost).
 */
@Injectable()
export class TenantDirectory implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly keys = new TtlCache<ApiKeyRecord | null>();
  private readonly tenants = new TtlCache<TenantRecord | null>();
  private readonly lastUsedWritten = new Map<string, number>();
  /** Long requests (event streams) to end when their key is revoked or their tenant disabled. */
  private readonly watchers = new Set<{ caller: Caller; onLost: () => void }>();
  private subscriber?: RedisClient;
  private readonly k: { tenants: string; keys: string; keyIds: string; tenantKeys: (tenantId: string) => string; lastUsed: string; channel: string };

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    const base = `${config.QUEUE_PREFIX}:{a}`;
    this.k = {
      tenants: `${base}:tenants`,
      keys: `${base}:keys`,
      keyIds: `${base}:key-ids`,
      tenantKeys: (tenantId) => `${base}:tenant-keys:${tenantId}`,
      lastUsed: `${base}:key-last-used`,
      channel: `${config.QUEUE_PREFIX}:auth-changes`,
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    const subscriber = duplicateRedis(this.redis, { connectionName: `podflow-auth:${this.config.QUEUE_PREFIX}` });
    subscriber.on('message', (_channel: string, message: string) => this.forget(message));
    subscriber.on('error', (error: Error) => this.logger.warn({ err: error }, 'auth change subscriber error; cached keys expire after 2 s anyway'));
    await subscriber.subscribe(this.k.channel);
    this.subscriber = subscriber;
  }

  onApplicationShutdown(): void {
    this.subscriber?.disconnect();
  }

  get adminEnabled(): boolean {
    return this.config.adminKeyHash !== undefined;
  }

  /**
   * The tenant of a presented key. Bootstrap keys (PODFLOW_API_KEYS) first, then issued ones.
   * @throws PodflowError UNAUTHENTICATED (unknown, revoked, or the admin key), FORBIDDEN (tenant disabled).
   */
  async authenticate(presented: string): Promise<Caller> {
    const hash = hashApiKey(presented);
    if (hash === this.config.adminKeyHash) {
      throw new PodflowError('UNAUTHENTICATED', 'the admin key is not a tenant key: call tenant routes with a key of the tenant (issue one with POST /v1/admin/tenants/:id/keys)');
    }
    let tenantId = this.config.PODFLOW_API_KEYS.get(hash);
    if (tenantId === undefined) {
      const record = await this.keyRecord(hash);
      if (!record) throw new PodflowError('UNAUTHENTICATED', 'unknown API key: check the key, or ask your operator for one (PODFLOW_API_KEYS or the admin API)');
      if (record.revokedAt !== undefined) throw new PodflowError('UNAUTHENTICATED', `API key ${record.id} was revoked: ask your operator for a new one`);
      tenantId = record.tenantId;
      this.touch(record.id);
    }
    const tenant = await this.tenantRecord(tenantId);
    if (tenant?.disabledAt !== undefined) throw new PodflowError('FORBIDDEN', `tenant "${tenantId}" is disabled: its keys are refused until an operator enables it again`);
    return { tenantId, apiKeyId: hash };
  }

  /**
   * Lets only the admin key through.
   * @throws PodflowError NOT_FOUND (admin API off), UNAUTHENTICATED (no or unknown key), FORBIDDEN (a tenant's key).
   */
  async authenticateAdmin(presented: string | undefined): Promise<void> {
    if (!this.adminEnabled) throw new PodflowError('NOT_FOUND', 'the admin API is off: set PODFLOW_ADMIN_KEY or PODFLOW_ADMIN_KEY_FILE on the coordinator');
    if (presented === undefined) throw new PodflowError('UNAUTHENTICATED', 'missing admin key: send "Authorization: Bearer <PODFLOW_ADMIN_KEY>"');
    if (hashApiKey(presented) === this.config.adminKeyHash) return;
    const tenantKey = await this.authenticate(presented).then(
      () => true,
      () => false,
    );
    if (tenantKey) throw new PodflowError('FORBIDDEN', "this route needs the admin key (PODFLOW_ADMIN_KEY); a tenant's key cannot manage tenants or keys");
    throw new PodflowError('UNAUTHENTICATED', 'unknown admin key: send the value of PODFLOW_ADMIN_KEY (or of the file PODFLOW_ADMIN_KEY_FILE names)');
  }

  // ---------------------------------------------------------------- admin operations

  async createTenant(id: string, name: string | undefined, now = Date.now()) {
    const record: TenantRecord = { id, name: name ?? id, createdAt: now };
    if (!(await this.redis.hsetnx(this.k.tenants, id, JSON.stringify(record)))) throw new PodflowError('CONFLICT', `tenant "${id}" already exists`);
    await this.changed(`tenant:${id}`);
    return tenantView(record, 'admin');
  }

  async listTenants() {
    const stored = await this.redis.hgetall(this.k.tenants);
    const records = new Map<string, TenantRecord>();
    for (const [id, json] of Object.entries(stored)) {
      const record = parseRecord<TenantRecord>(json, this.logger, `tenant ${id}`);
      if (record) records.set(id, record);
    }
    const views = [...records.values()].map((r) => tenantView(r, 'admin'));
    for (const id of new Set(this.config.PODFLOW_API_KEYS.values())) if (!records.has(id)) views.push(tenantView({ id, name: id, createdAt: 0 }, 'environment'));
    return views.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async getTenant(id: string) {
    const record = await this.storedTenant(id);
    if (record) return tenantView(record, 'admin');
    if (this.isEnvironmentTenant(id)) return tenantView({ id, name: id, createdAt: 0 }, 'environment');
    throw new PodflowError('NOT_FOUND', `no tenant "${id}"`);
  }

  /** Renames, disables or enables a tenant (a PODFLOW_API_KEYS tenant gets a record then). */
  async updateTenant(id: string, change: { name?: string; disabled?: boolean } & { [K in keyof TenantSettings]?: TenantSettings[K] | null }, now = Date.now()) {
    const fields: Record<string, unknown> = {};
    if (change.name !== undefined) fields.name = change.name;
    // Disabling keeps the first time it was disabled: applied only where the record has none.
    if (change.disabled === false) fields.disabledAt = null;
    for (const field of TENANT_SETTINGS) if (change[field] !== undefined) fields[field] = change[field];
    const fallback = this.isEnvironmentTenant(id) ? JSON.stringify({ id, name: id, createdAt: now }) : '';
    let json = (await UPDATE_TENANT.run(this.redis, [this.k.tenants], [id, JSON.stringify(fields), fallback])) as string | null;
    if (!json) throw new PodflowError('NOT_FOUND', `no tenant "${id}"`);
    if (change.disabled === true && (JSON.parse(json) as TenantRecord).disabledAt === undefined) {
      json = (await UPDATE_TENANT.run(this.redis, [this.k.tenants], [id, JSON.stringify({ disabledAt: now }), fallback])) as string;
    }
    await this.changed(`tenant:${id}`);
    return tenantView(JSON.parse(json) as TenantRecord, 'admin');
  }

  /** A new key for the tenant; the secret is in the answer and nowhere else. */
  async issueKey(tenantId: string, name: string, now = Date.now()): Promise<ApiKeyView & { key: string }> {
    await this.getTenant(tenantId);
    const key = newApiKey();
    const hash = hashApiKey(key);
    const record: ApiKeyRecord = { id: newKeyId(), tenantId, name, createdAt: now };
    const replies = await this.redis
      .multi()
      .hset(this.k.keys, hash, JSON.stringify(record))
      .hset(this.k.keyIds, record.id, hash)
      .sadd(this.k.tenantKeys(tenantId), record.id)
      .exec();
    const failed = replies?.find(([error]) => error)?.[0];
    if (!replies || failed) throw new Error(`the API key could not be stored: ${failed?.message ?? 'the transaction was aborted'}`);
    return { ...keyView(record, undefined), key };
  }

  async listKeys(tenantId: string): Promise<ApiKeyView[]> {
    await this.getTenant(tenantId);
    const ids = (await this.redis.smembers(this.k.tenantKeys(tenantId))).sort();
    if (ids.length === 0) return [];
    const hashes = await this.redis.hmget(this.k.keyIds, ...ids);
    const present = hashes.filter((h): h is string => h !== null);
    const [records, used] = await Promise.all([present.length ? this.redis.hmget(this.k.keys, ...present) : Promise.resolve([] as Array<string | null>), this.redis.hmget(this.k.lastUsed, ...ids)]);
    const lastUsed = new Map(ids.map((id, i) => [id, used[i] ? Number(used[i]) : undefined]));
    return records
      .filter((json): json is string => json !== null)
      .flatMap((json) => parseRecord<ApiKeyRecord>(json, this.logger, `a key of tenant ${tenantId}`) ?? [])
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
      .map((record) => keyView(record, lastUsed.get(record.id)));
  }

  /** Revokes a key of the tenant: refused on every coordinator from the moment this returns (within 2 s at worst). */
  async revokeKey(tenantId: string, keyId: string, now = Date.now()): Promise<ApiKeyView> {
    const { hash, record } = await this.keyOf(tenantId, keyId);
    const revoked = await this.revokeOnce(hash, now);
    await this.changed(`key:${hash}`);
    return keyView(revoked ?? record, undefined);
  }

  /**
   * A new key with the same name; the old one is revoked first, atomically, so two rotations at
   * once give one new key and one 409, never two live keys.
   */
  async rotateKey(tenantId: string, keyId: string, now = Date.now()): Promise<ApiKeyView & { key: string; replaces: string }> {
    const { hash, record } = await this.keyOf(tenantId, keyId);
    if (!(await this.revokeOnce(hash, now))) throw new PodflowError('CONFLICT', `API key ${keyId} is revoked already: issue a new key instead`);
    await this.changed(`key:${hash}`);
    const issued = await this.issueKey(tenantId, record.name, now);
    return { ...issued, replaces: keyId };
  }

  /** The record after revoking it, or undefined when it was revoked already. */
  private async revokeOnce(hash: string, now: number): Promise<ApiKeyRecord | undefined> {
    const json = (await REVOKE_KEY.run(this.redis, [this.k.keys], [hash, String(now)])) as string | number | null;
    return typeof json === 'string' ? (JSON.parse(json) as ApiKeyRecord) : undefined;
  }

  // ---------------------------------------------------------------- internals

  private async keyOf(tenantId: string, keyId: string): Promise<{ hash: string; record: ApiKeyRecord }> {
    const hash = await this.redis.hget(this.k.keyIds, keyId);
    const json = hash ? await this.redis.hget(this.k.keys, hash) : null;
    const record = parseRecord<ApiKeyRecord>(json, this.logger, `key ${keyId}`);
    // Another tenant's key is "not found" here, never "forbidden".
    if (!hash || !record || record.tenantId !== tenantId) throw new PodflowError('NOT_FOUND', `tenant "${tenantId}" has no API key ${keyId}`);
    return { hash, record };
  }

  private isEnvironmentTenant(id: string): boolean {
    for (const tenant of this.config.PODFLOW_API_KEYS.values()) if (tenant === id) return true;
    return false;
  }

  private async storedTenant(id: string): Promise<TenantRecord | undefined> {
    return parseRecord<TenantRecord>(await this.redis.hget(this.k.tenants, id), this.logger, `tenant ${id}`);
  }

  private async keyRecord(hash: string): Promise<ApiKeyRecord | null> {
    const now = Date.now();
    const cached = this.keys.get(hash, now);
    if (cached) return cached.value;
    const record = parseRecord<ApiKeyRecord>(await authRead(this.redis.hget(this.k.keys, hash)), this.logger, 'a key') ?? null;
    this.keys.set(hash, record, now);
    return record;
  }

  /** The tenant's own settings (admin API), cached like every tenant read; absent ones fall back to the operator's. */
  async tenantSettings(tenantId: string): Promise<TenantSettings> {
    const record = await this.tenantRecord(tenantId);
    const settings: TenantSettings = {};
    for (const field of ['weight', 'maxInFlight', 'runsPerMinute', 'maxRunsInProgress', 'maxNodeTimeoutSeconds', 'maxRunTimeoutSeconds'] as const) if (typeof record?.[field] === 'number') settings[field] = record[field];
    for (const field of ['maxNodeMemory', 'maxNodeCpu'] as const) if (typeof record?.[field] === 'string') settings[field] = record[field];
    // Redis's cjson writes an empty array as {}: anything set but not a list allows no host (fail closed).
    if (record?.webhookHosts !== undefined && record.webhookHosts !== null) settings.webhookHosts = Array.isArray(record.webhookHosts) ? record.webhookHosts : [];
    return settings;
  }

  private async tenantRecord(id: string): Promise<TenantRecord | null> {
    const now = Date.now();
    const cached = this.tenants.get(id, now);
    if (cached) return cached.value;
    const record = parseRecord<TenantRecord>(await authRead(this.redis.hget(this.k.tenants, id)), this.logger, `tenant ${id}`) ?? null;
    this.tenants.set(id, record, now);
    return record;
  }

  private touch(keyId: string): void {
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(keyId) ?? 0) < LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(keyId, now);
    if (this.lastUsedWritten.size > CACHE_MAX) this.lastUsedWritten.delete(this.lastUsedWritten.keys().next().value!);
    this.redis.hset(this.k.lastUsed, keyId, String(now)).catch((error: unknown) => this.logger.debug({ err: error }, 'could not record a key use'));
  }

  /** Drops the change here and tells every other coordinator. */
  private async changed(what: string): Promise<void> {
    this.forget(what);
    await this.redis.publish(this.k.channel, what);
  }

  private forget(what: string): void {
    if (what.startsWith('key:')) this.keys.delete(what.slice(4));
    else if (what.startsWith('tenant:')) this.tenants.delete(what.slice(7));
    for (const watcher of this.watchers) {
      if (what !== `key:${watcher.caller.apiKeyId}` && what !== `tenant:${watcher.caller.tenantId}`) continue;
      void this.stillAllowed(watcher.caller).then((allowed) => {
        if (!allowed && this.watchers.delete(watcher)) watcher.onLost();
      });
    }
  }

  /**
   * Calls `onLost` once if the caller's key is revoked or its tenant disabled while a long request
   * of it runs (an event stream). Returns the function that stops watching.
   */
  watchAccess(caller: Caller, onLost: () => void): () => void {
    const watcher = { caller, onLost };
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** Whether the caller's key still opens tenant routes; a Redis that does not answer keeps what is open. */
  private async stillAllowed(caller: Caller): Promise<boolean> {
    try {
      if (!this.config.PODFLOW_API_KEYS.has(caller.apiKeyId)) {
        const record = await this.keyRecord(caller.apiKeyId);
        if (!record || record.revokedAt !== undefined) return false;
      }
      return (await this.tenantRecord(caller.tenantId))?.disabledAt === undefined;
    } catch {
      return true;
    }
  }
}
