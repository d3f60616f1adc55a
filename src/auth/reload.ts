// Replacing a running node's TLS material (certificate rotation) all at once or not at
// all. Every part that holds TLS material (the gRPC and HTTPS servers, the Raft peer
// layer, the forwarder's clients) registers a stage function: given the new material it
// does everything that can fail (building contexts, credentials) and returns a commit
// that only swaps references. A reload reads and checks every file first, then stages
// every part, and only when all staged commits them; a failure anywhere leaves the old
// material in force everywhere.
import { createSecureContext } from 'node:tls';

import { TlsConfigError, TlsIdentityChangeError } from './errors.js';
import { loadTlsMaterial, type LoadTlsOptions, type TlsMaterial } from './tls.js';

/** What a node's TLS material is for: what clients reach, or what other nodes reach. */
export type TlsUse = 'server' | 'peer';

export const TLS_USES: readonly TlsUse[] = ['server', 'peer'];

/**
 * Prepares a switch to `material`: throws if the part cannot use it, else returns the
 * commit, which must not fail (it only swaps what new connections use).
 */
export type TlsStage = (material: TlsMaterial) => () => void;

/** The outcome of one reload, per use configured. */
export interface TlsReloadEntry {
  readonly use: TlsUse;
  readonly material: TlsMaterial;
  /** The previous material, for logs (serial numbers, dates). */
  readonly previous: TlsMaterial;
  /** False when the files held the same bytes as before: nothing was switched. */
  readonly changed: boolean;
}

export interface TlsReloaderOptions {
  /** The moment validity is checked against (tests). Default: now. */
  readonly now?: () => Date;
  /** Reads and checks the files (tests); default `loadTlsMaterial`. */
  readonly load?: (files: TlsMaterial['files'], o: LoadTlsOptions) => Promise<TlsMaterial>;
}

function sameBytes(a: TlsMaterial, b: TlsMaterial): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && a.ca.equals(b.ca);
}

/** A part registered for a use (server, peer) the node has no TLS material for. */
export class TlsUseNotConfiguredError extends Error {
  override readonly name = 'TlsUseNotConfiguredError';
  constructor(
    readonly use: TlsUse,
    options?: ErrorOptions,
  ) {
    super(`no ${use} TLS material is configured: nothing to register a part for`, options);
  }
}

/**
 * Holds the TLS material in force for each use and replaces it on `reload()`. Reloads
 * are serialised: a second one starts after the first has settled.
 */
export class TlsReloader {
  private readonly current = new Map<TlsUse, TlsMaterial>();
  private readonly stages = new Map<TlsUse, Set<TlsStage>>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => Date;
  private readonly load: NonNullable<TlsReloaderOptions['load']>;

  constructor(initial: Partial<Record<TlsUse, TlsMaterial>>, options: TlsReloaderOptions = {}) {
    for (const use of TLS_USES) {
      const m = initial[use];
      if (m) this.current.set(use, m);
    }
    this.now = options.now ?? (() => new Date());
    this.load = options.load ?? loadTlsMaterial;
  }

  /** The material in force for `use`, if that use is configured. */
  material(use: TlsUse): TlsMaterial | undefined {
    return this.current.get(use);
  }

  /** The uses configured (with material), in a fixed order. */
  uses(): TlsUse[] {
    return TLS_USES.filter((u) => this.current.has(u));
  }

  /**
   * Registers a part that uses `use`'s material; returns the function that unregisters
   * it (a part that closed takes no more part in reloads).
   */
  register(use: TlsUse, stage: TlsStage): () => void {
    if (!this.current.has(use)) throw new TlsUseNotConfiguredError(use);
    const set = this.stages.get(use) ?? new Set<TlsStage>();
    set.add(stage);
    this.stages.set(use, set);
    return () => void set.delete(stage);
  }

  /**
   * Reads every configured use's files again and switches every registered part to the
   * new material, or none of them. Rejects with a `TlsConfigError` naming the file, a
   * `TlsIdentityChangeError` when a CN changed, or what a part's stage threw; the old
   * material then stays in force everywhere.
   */
  reload(): Promise<TlsReloadEntry[]> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(): Promise<TlsReloadEntry[]> {
    const uses = this.uses();
    const now = this.now();
    const loaded = await Promise.allSettled(
      uses.map((use) => this.load(this.current.get(use)!.files, { now })),
    );
    // Reported in the fixed use order, whatever settled first.
    for (const r of loaded) if (r.status === 'rejected') throw r.reason;
    const entries = uses.map((use, i): TlsReloadEntry => {
      const previous = this.current.get(use)!;
      const material = (loaded[i] as PromiseFulfilledResult<TlsMaterial>).value;
      return { use, material, previous, changed: !sameBytes(previous, material) };
    });
    for (const { material, previous } of entries) {
      if (material.commonName !== previous.commonName) {
        throw new TlsIdentityChangeError(
          material.files.certFile,
          previous.commonName,
          material.commonName,
        );
      }
    }
    const commits: (() => void)[] = [];
    for (const { use, material, changed } of entries) {
      if (!changed) continue;
      checkContext(material);
      for (const stage of this.stages.get(use) ?? []) commits.push(stage(material));
    }
    // Nothing below throws: every part has accepted its material.
    for (const commit of commits) commit();
    for (const { use, material } of entries) this.current.set(use, material);
    return entries;
  }
}

/**
 * OpenSSL's own check of the material, as every part will build it: a combination the
 * file checks let through (an unsupported key type, say) fails here, before any part
 * switched, rather than inside a server's setSecureContext.
 */
function checkContext(material: TlsMaterial): void {
  try {
    createSecureContext({ cert: material.cert, key: material.key, ca: material.ca });
  } catch (err) {
    throw new TlsConfigError(
      material.files.certFile,
      `cannot be used with ${material.files.keyFile} and ${material.files.caFile}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Within this many days of its notAfter a certificate is logged as expiring soon. */
export const EXPIRY_WARNING_DAYS = 30;

/** Whole days left before `material` expires at `now` (negative once expired). */
export function daysLeft(material: Pick<TlsMaterial, 'notAfter'>, now: Date = new Date()): number {
  return Math.floor((material.notAfter.getTime() - now.getTime()) / 86_400_000);
}

/** True when `material` expires within EXPIRY_WARNING_DAYS of `now`. */
export function expiresSoon(
  material: Pick<TlsMaterial, 'notAfter'>,
  now: Date = new Date(),
): boolean {
  return material.notAfter.getTime() - now.getTime() < EXPIRY_WARNING_DAYS * 86_400_000;
}
