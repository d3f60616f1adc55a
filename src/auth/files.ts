// Writing certificate sets to disk: the book's file names, keys readable by the owner
// only, nothing overwritten unless asked.
import { constants } from 'node:fs';
import { access, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  type IssuedCertificate,
} from './certs.js';
import { CertFilesExistError } from './errors.js';

/** The book's Casbin model: a request is (subject, object, action). */
export const DEFAULT_MODEL_CONF = `# Request definition
[request_definition]
r = sub, obj, act

# Policy definition
[policy_definition]
p = sub, obj, act

# Policy effect
[policy_effect]
e = some(where (p.eft == allow))

# Matchers
[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
`;

/** The book's policy: `root` may produce and consume on every object (`*`). */
export const DEFAULT_POLICY_CSV = `p, root, *, produce
p, root, *, consume
`;

/** The book's file names, as `cert init` writes them. */
export const BOOK_FILES = {
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server.pem',
  serverKey: 'server-key.pem',
  rootClientCert: 'root-client.pem',
  rootClientKey: 'root-client-key.pem',
  nobodyClientCert: 'nobody-client.pem',
  nobodyClientKey: 'nobody-client-key.pem',
  model: 'model.conf',
  policy: 'policy.csv',
} as const;

/** One file to write. Secrets get mode 0600, everything else 0644. */
export interface FileToWrite {
  readonly name: string;
  readonly content: string;
  readonly secret: boolean;
}

export interface WriteOptions {
  /** Replace files that exist. Without it, an existing file stops the whole write. */
  readonly force?: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Creates `path` (failing if it exists) with exactly `mode`, whatever the umask. */
async function createExclusive(path: string, content: string, mode: number) {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeOne(path: string, content: string, mode: number, force: boolean) {
  // Without force, 'wx' fails if the file appeared since we checked: never clobber.
  if (!force) return createExclusive(path, content, mode);
  // With force: write beside and rename, so a reader never sees a half-written key.
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await createExclusive(tmp, content, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes `files` into `dir` (created if missing). Unless `force`, checks every target
 * first and writes nothing if any exists. Returns the paths written.
 */
export async function writeFileSet(
  dir: string,
  files: readonly FileToWrite[],
  options: WriteOptions = {},
): Promise<string[]> {
  const force = options.force ?? false;
  await mkdir(dir, { recursive: true });
  const paths = files.map((f) => join(dir, f.name));
  if (!force) {
    const present: string[] = [];
    for (const p of paths) if (await exists(p)) present.push(p);
    if (present.length > 0) throw new CertFilesExistError(present);
  }
  for (const [i, f] of files.entries()) {
    await writeOne(paths[i] ?? join(dir, f.name), f.content, f.secret ? 0o600 : 0o644, force);
  }
  return paths;
}

/** The certificate and key files of one issued certificate: `<base>.pem`, `<base>-key.pem`. */
export function certificateFiles(base: string, issued: IssuedCertificate): FileToWrite[] {
  return [
    { name: `${base}.pem`, content: issued.certPem, secret: false },
    { name: `${base}-key.pem`, content: issued.keyPem, secret: true },
  ];
}

export interface BookFileSetOptions extends WriteOptions {
  /** Extra server SANs besides localhost, 127.0.0.1 and ::1. */
  readonly hosts?: readonly string[];
}

/**
 * Creates the book's set in `dir`: a CA, a server certificate, clients `root` and
 * `nobody`, and the default `model.conf` and `policy.csv`. Returns the paths written.
 */
export async function writeBookFileSet(
  dir: string,
  options: BookFileSetOptions = {},
): Promise<string[]> {
  const ca = await createCa();
  const server = await issueServerCertificate(ca, {
    commonName: 'server',
    hosts: options.hosts ?? [],
  });
  const root = await issueClientCertificate(ca, { commonName: 'root' });
  const nobody = await issueClientCertificate(ca, { commonName: 'nobody' });
  return writeFileSet(
    dir,
    [
      { name: BOOK_FILES.caCert, content: ca.certPem, secret: false },
      { name: BOOK_FILES.caKey, content: ca.keyPem, secret: true },
      ...certificateFiles('server', server),
      ...certificateFiles('root-client', root),
      ...certificateFiles('nobody-client', nobody),
      { name: BOOK_FILES.model, content: DEFAULT_MODEL_CONF, secret: false },
      { name: BOOK_FILES.policy, content: DEFAULT_POLICY_CSV, secret: false },
    ],
    options,
  );
}
