// `commitlog cert …`: certificates and the default ACL files with no tool beyond this
// package. The files are PEM, interchangeable with ones made by cfssl or openssl.
import { InvalidArgumentError, type Command } from 'commander';
import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  BOOK_FILES,
  CertificateError,
  LOOPBACK_HOSTS,
  certificateFiles,
  issueClientCertificate,
  issueServerCertificate,
  loadCa,
  writeBookFileSet,
  writeFileSet,
  type CertificateAuthority,
} from '../auth/index.js';

/** Where the command prints what it wrote. Tests pass their own. */
export interface CertCommandOutput {
  log(line: string): void;
  /** Warnings (default: stderr). */
  warn?(line: string): void;
}

/** The root of the git work tree that holds `dir` (a `.git` entry above it), if any. */
export async function gitWorkTreeOf(dir: string): Promise<string | undefined> {
  for (let at = resolve(dir); ; at = dirname(at)) {
    try {
      await access(join(at, '.git'));
      return at;
    } catch {
      // not here: look one level up
    }
    if (dirname(at) === at) return undefined;
  }
}

function collectHosts(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((h) => h.trim())
      .filter((h) => h !== ''),
  ];
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new InvalidArgumentError('must be a whole number of days between 1 and 36500');
  }
  return days;
}

async function readCaDir(dir: string): Promise<CertificateAuthority> {
  const certFile = join(dir, BOOK_FILES.caCert);
  const keyFile = join(dir, BOOK_FILES.caKey);
  // Both reads settle before any error is reported, so the message names every file
  // that is missing, always in the same order (not whichever read failed first).
  const [cert, key] = await Promise.allSettled([
    readFile(certFile, 'utf8'),
    readFile(keyFile, 'utf8'),
  ]);
  if (cert.status === 'rejected' || key.status === 'rejected') {
    const failed = [
      ...(cert.status === 'rejected' ? [[certFile, cert.reason as Error] as const] : []),
      ...(key.status === 'rejected' ? [[keyFile, key.reason as Error] as const] : []),
    ];
    throw new CertificateError(
      failed.map(([file, err]) => `cannot read ${file}: ${err.message}`).join('; '),
      { cause: failed[0]?.[1] },
    );
  }
  const [certPem, keyPem] = [cert.value, key.value];
  try {
    return await loadCa(certPem, keyPem);
  } catch (err) {
    throw new CertificateError(`${certFile} / ${keyFile}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

interface LeafOptions {
  cn: string;
  caDir: string;
  out?: string;
  name?: string;
  days?: number;
  host?: string[];
  force?: boolean;
}

function report(output: CertCommandOutput, written: string[]) {
  for (const path of written) output.log(`wrote ${path}`);
}

/** Adds `cert init`, `cert server` and `cert client` to `program`. */
export function registerCertCommands(
  program: Command,
  output: CertCommandOutput = { log: (line) => console.log(line) },
): Command {
  const cert = program
    .command('cert')
    .description(
      'create a CA, server and client certificates (ECDSA P-256, PEM) and the default ACL files',
    );

  cert
    .command('init')
    .description(
      `create the standard set in DIR: ${Object.values(BOOK_FILES).join(', ')}.\n` +
        `The server certificate names ${LOOPBACK_HOSTS.join(', ')} and every --host; clients ` +
        '"root" and "nobody"; the policy lets root produce and consume. Keys are mode 0600.',
    )
    .requiredOption('--dir <dir>', 'directory to write into (created if missing)')
    .option(
      '--host <host>',
      'extra DNS name or IP address for the server certificate (repeatable, or comma-separated)',
      collectHosts,
    )
    .option('--force', 'replace existing files (without it, nothing is written when any exists)')
    .action(async (opts: { dir: string; host?: string[]; force?: boolean }) => {
      report(
        output,
        await writeBookFileSet(opts.dir, { hosts: opts.host ?? [], force: opts.force ?? false }),
      );
      const tree = await gitWorkTreeOf(opts.dir);
      if (tree !== undefined) {
        (output.warn ?? ((line: string) => console.error(line)))(
          `warning: ${resolve(opts.dir)} is inside the git work tree ${tree}: its private keys ` +
            '(*-key.pem) must never be committed; add the directory to .gitignore ' +
            '(certs/ already is) or write them elsewhere',
        );
      }
    });

  const leaf = (kind: 'server' | 'client') =>
    cert
      .command(kind)
      .description(
        kind === 'server'
          ? `issue a server certificate signed by the CA in --ca-dir: SANs ${LOOPBACK_HOSTS.join(', ')} ` +
              "and every --host; usable as a server and as a node's peer identity. Writes " +
              '<name>.pem and <name>-key.pem (name defaults to <cn>-server)'
          : 'issue a client certificate signed by the CA in --ca-dir; its CN is the subject ' +
              'the ACL sees. Writes <name>.pem and <name>-key.pem (name defaults to <cn>-client)',
      )
      .requiredOption('--cn <name>', 'common name (the subject for clients)')
      .requiredOption(
        '--ca-dir <dir>',
        `directory holding ${BOOK_FILES.caCert} and ${BOOK_FILES.caKey}`,
      )
      .option('--out <dir>', 'directory to write into (default: --ca-dir)')
      .option('--name <base>', 'base file name (default: <cn>-server or <cn>-client)')
      .option('--days <n>', 'validity in days (default 825)', parseDays)
      .option('--force', 'replace existing files (without it, nothing is written when any exists)');

  leaf('server')
    .option(
      '--host <host>',
      'extra DNS name or IP address (repeatable, or comma-separated)',
      collectHosts,
    )
    .action(async (opts: LeafOptions) => {
      const ca = await readCaDir(opts.caDir);
      const issued = await issueServerCertificate(ca, {
        commonName: opts.cn,
        hosts: opts.host ?? [],
        days: opts.days,
      });
      const base = opts.name ?? `${opts.cn}-server`;
      report(
        output,
        await writeFileSet(opts.out ?? opts.caDir, certificateFiles(base, issued), opts),
      );
    });

  leaf('client').action(async (opts: LeafOptions) => {
    const ca = await readCaDir(opts.caDir);
    const issued = await issueClientCertificate(ca, { commonName: opts.cn, days: opts.days });
    const base = opts.name ?? `${opts.cn}-client`;
    report(
      output,
      await writeFileSet(opts.out ?? opts.caDir, certificateFiles(base, issued), opts),
    );
  });

  return cert;
}
