import { loadWorkerConfig } from './config';

describe('loadWorkerConfig', () => {
  const base = { REDIS_URL: 'redis://127.0.0.1:6379', FILE_URL_SECRET: 'a-file-url-secret-of-32-characters' };

  it('takes installer settings for layer builder pods', () => {
    const config = loadWorkerConfig({ ...base, K8S_LAYER_BUILDER_ENV: '{"PIP_INDEX_URL":"https://pypi.example/simple","npm_config_registry":"https://npm.example/"}' });
    expect(config.K8S_LAYER_BUILDER_ENV).toEqual({ PIP_INDEX_URL: 'https://pypi.example/simple', npm_config_registry: 'https://npm.example/' });
  });

  it.each([
    ['a password in an index URL', '{"PIP_INDEX_URL":"https://user:s3cret@pypi.example/simple"}', 'PIP_INDEX_URL'],
    ['a token alone in an index URL', '{"PIP_INDEX_URL":"https://t0ken@pypi.fury.io/acct/"}', 'PIP_INDEX_URL'],
    ['a token in a proxy URL', '{"https_proxy":"http://t0ken@proxy.example:3128"}', 'https_proxy'],
    ['a token', '{"NPM_TOKEN":"npm_abc"}', 'NPM_TOKEN'],
    ['an auth setting', '{"npm_config__auth":"dXNlcjpwYXNz"}', 'npm_config__auth'],
  ])('refuses %s in K8S_LAYER_BUILDER_ENV, naming it (installing runs package code, which reads its environment)', (_what, value, name) => {
    expect(() => loadWorkerConfig({ ...base, K8S_LAYER_BUILDER_ENV: value })).toThrow(
      new RegExp(`K8S_LAYER_BUILDER_ENV: K8S_LAYER_BUILDER_ENV\\.${name} carries a credential .*installing runs package code, which could read it`),
    );
  });

  it('leaves room in the layer builder\'s memory for its RAM-backed staging directory and /tmp, or says how much to give', () => {
    expect(loadWorkerConfig(base)).toMatchObject({ K8S_LAYER_BUILDER_MEMORY_MB: 3072, K8S_LAYER_BUILDER_STAGING_SIZE: '1Gi', K8S_LAYER_BUILDER_TMP_SIZE: '1Gi' });
    expect(() => loadWorkerConfig({ ...base, K8S_LAYER_BUILDER_STAGING_SIZE: '2Gi' })).toThrow(
      'K8S_LAYER_BUILDER_MEMORY_MB: K8S_LAYER_BUILDER_MEMORY_MB=3072 leaves no room: the builder\'s RAM-backed staging directory (K8S_LAYER_BUILDER_STAGING_SIZE) and /tmp (K8S_LAYER_BUILDER_TMP_SIZE) count in it, plus 512 MiB for the installer; give at least 3584',
    );
    expect(loadWorkerConfig({ ...base, K8S_LAYER_BUILDER_STAGING_SIZE: '2Gi', K8S_LAYER_BUILDER_MEMORY_MB: '4096' }).K8S_LAYER_BUILDER_MEMORY_MB).toBe(4096);
  });
});
