// Writes OCI image archives (an OCI image layout in a tar) from root filesystem directories, the
// format `ctr images import` reads. This is all a registry-less build needs: gzip'd layer tars, an
// image config naming their uncompressed digests, a manifest per image and an index that carries
// the image names containerd should record. Several images in one archive share their common
// layers, as they would in a registry.
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
 * Packs directory `rootfs` into the gzip'd layer tar `file`. Numeric owners and a fixed order and
 * mtime make the layer depend only on the directory's contents. Returns what a manifest and an
 * image config need to name it.
 */
export async function packLayer(rootfs, file) {
  const tarFile = `${file}.tar`;
  // Left by a build that was killed here: gzip would refuse to overwrite its output.
  rmSync(tarFile, { force: true });
  rmSync(`${tarFile}.gz`, { force: true });
  run('tar', ['--numeric-owner', '--sort=name', '--mtime=@0', '--xattrs', '-C', rootfs, '-cf', tarFile, '.'], { quiet: true });
  const diffId = await sha256OfFile(tarFile);
  const unpackedSize = statSync(tarFile).size;
  run('gzip', ['-n', '-6', tarFile], { quiet: true });
  renameSync(`${tarFile}.gz`, file);
  return { file, diffId, digest: await sha256OfFile(file), size: statSync(file).size, unpackedSize };
}

/**
 * Writes `archive` holding `images`, each `{ name, config, layers }`: a fully qualified reference
 * (docker.io/podflow/runtime-python:local), the OCI image config's `config` section (User, Env,
 * WorkingDir, Entrypoint, Cmd, Labels) and its layers from `packLayer`, bottom first. Returns the
 * manifest digest of each image, by name.
 */
export async function writeOciArchive({ archive, images }) {
  const layout = `${archive}.layout`;
  rmSync(layout, { recursive: true, force: true });
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const manifests = [];
  const digests = {};
  for (const { name, config, layers } of images) {
    for (const layer of layers) copyFileSync(layer.file, join(blobs, layer.digest.slice('sha256:'.length)));
    const imageConfig = writeJsonBlob(blobs, 'application/vnd.oci.image.config.v1+json', {
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config,
      rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
      history: layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'podflow k8s/local-cluster (offline image build)' })),
    });
    const manifest = writeJsonBlob(blobs, 'application/vnd.oci.image.manifest.v1+json', {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: imageConfig,
      layers: layers.map(({ digest, size }) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size })),
    });
    manifests.push({
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() },
    });
    digests[name] = manifest.digest;
  }
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  run('tar', ['-C', layout, '-cf', `${archive}.partial`, 'oci-layout', 'index.json', 'blobs'], { quiet: true });
  renameSync(`${archive}.partial`, archive);
  rmSync(layout, { recursive: true, force: true });
  return digests;
}
