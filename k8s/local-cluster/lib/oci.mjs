// Writes a single-layer OCI image archive (an OCI image layout in a tar) from a root filesystem
// directory, the format `ctr images import` reads. This is all a registry-less build needs: one
// gzip'd layer tar, an image config naming its uncompressed digest, a manifest and an index that
// carries the image name containerd should record.
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './sh.mjs';

async function sha256OfFile(file) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

const sha256OfText = (text) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** Writes `json` as a content-addressed blob and returns its descriptor. */
function writeJsonBlob(blobs, mediaType, json) {
  const text = JSON.stringify(json);
  const digest = sha256OfText(text);
  writeFileSync(join(blobs, digest.slice('sha256:'.length)), text);
  return { mediaType, digest, size: Buffer.byteLength(text) };
}

/**
 * Packs `rootfs` into `archive` as image `name` (a fully qualified reference such as
 * docker.io/podflow/runtime-python:local). `config` is the OCI image config's `config` section
 * (User, Env, WorkingDir, Entrypoint, Cmd, Labels). Returns the manifest digest and the sizes.
 */
export async function writeOciArchive({ rootfs, archive, name, config }) {
  const layout = `${archive}.layout`;
  rmSync(layout, { recursive: true, force: true });
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });

  // Numeric owners and a fixed order and mtime make the layer depend only on the rootfs contents.
  const layerTar = join(layout, 'layer.tar');
  run('tar', ['--numeric-owner', '--sort=name', '--mtime=@0', '--xattrs', '-C', rootfs, '-cf', layerTar, '.'], { quiet: true });
  const diffId = await sha256OfFile(layerTar);
  const unpackedSize = statSync(layerTar).size;
  run('gzip', ['-n', '-6', layerTar], { quiet: true });
  const layerDigest = await sha256OfFile(`${layerTar}.gz`);
  renameSync(`${layerTar}.gz`, join(blobs, layerDigest.slice('sha256:'.length)));
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: statSync(join(blobs, layerDigest.slice(7))).size };

  const imageConfig = writeJsonBlob(blobs, 'application/vnd.oci.image.config.v1+json', {
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config,
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'podflow k8s/local-cluster (offline image build)' }],
  });
  const manifest = writeJsonBlob(blobs, 'application/vnd.oci.image.manifest.v1+json', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: imageConfig,
    layers: [layer],
  });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() },
    }],
  }));
  run('tar', ['-C', layout, '-cf', `${archive}.partial`, 'oci-layout', 'index.json', 'blobs'], { quiet: true });
  renameSync(`${archive}.partial`, archive);
  rmSync(layout, { recursive: true, force: true });
  return { manifestDigest: manifest.digest, compressedSize: layer.size, unpackedSize };
}
