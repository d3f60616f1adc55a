// The authorizer: Casbin with the book's model (sub, obj, act) and a policy file, or,
// with no ACL files configured, "every authenticated subject is allowed". Decisions are
// cached per (subject, object, action), so the produce path costs a map lookup, not a
// policy evaluation; a reload swaps the enforcer and the cache together.
import { newEnforcer, newModelFromString, StringAdapter, type Enforcer, type Model } from 'casbin';
import { readFile } from 'node:fs/promises';
import { AclConfigError, AclLoadError, PermissionDeniedError } from './errors.js';

/** The object of every call today: the book authorizes against the wildcard `*`. */
export const OBJECT_WILDCARD = '*';
/** Actions the server asks about. */
export const ACTION_PRODUCE = 'produce';
export const ACTION_CONSUME = 'consume';

export interface AclFiles {
  readonly modelFile: string;
  readonly policyFile: string;
}

export interface AuthorizerOptions {
  /** Both or neither. Neither: every authenticated subject is allowed. */
  readonly modelFile?: string;
  readonly policyFile?: string;
  /** Distinct cached decisions kept before the cache starts over. Default 10,000. */
  readonly cacheSize?: number;
}

/** `acl`: Casbin decides. `allow-authenticated`: any verified subject is allowed. */
export type AuthorizerMode = 'acl' | 'allow-authenticated';

export interface AuthorizerStats {
  /** Policy evaluations (cache misses). */
  readonly evaluations: number;
  readonly cacheHits: number;
  /** Evaluations that threw (and so denied). */
  readonly evaluationErrors: number;
  /** Successful loads, the first one included. */
  readonly loads: number;
}

/** One loaded policy: the enforcer and the decisions taken with it. */
interface Loaded {
  readonly enforcer: Enforcer;
  readonly decisions: Map<string, boolean>;
  readonly rules: number;
}

async function readAclFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AclLoadError(
      file,
      code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`,
      { cause: err },
    );
  }
}

function tokenCount(model: Model, sec: string, key: string): number | undefined {
  return model.model.get(sec)?.get(key)?.tokens.length;
}

/**
 * Checks each policy line against the model: Casbin silently skips lines whose type it
 * does not know, so a typo would quietly drop a rule. Returns the number of rules.
 */
function validatePolicy(file: string, text: string, model: Model): number {
  let rules = 0;
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(',').map((f) => f.trim());
    const ptype = fields[0] ?? '';
    const expected = tokenCount(model, ptype.slice(0, 1), ptype);
    if (expected === undefined) {
      throw new AclLoadError(file, `line ${i + 1}: unknown policy type ${JSON.stringify(ptype)}`);
    }
    // Quoted or bracketed values may hold commas; leave their counting to Casbin.
    const simple = !line.includes('"') && !line.includes('(');
    if (simple && fields.length - 1 !== expected) {
      throw new AclLoadError(
        file,
        `line ${i + 1}: ${ptype} takes ${expected} values, found ${fields.length - 1}`,
      );
    }
    rules++;
  }
  return rules;
}

async function loadAcl(files: AclFiles): Promise<Loaded> {
  const [modelText, policyText] = await Promise.all([
    readAclFile(files.modelFile),
    readAclFile(files.policyFile),
  ]);
  let model: Model;
  try {
    model = newModelFromString(modelText);
  } catch (err) {
    throw new AclLoadError(files.modelFile, `not a valid Casbin model: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const requestTokens = tokenCount(model, 'r', 'r');
  if (requestTokens !== 3) {
    throw new AclLoadError(
      files.modelFile,
      `the request definition must be r = sub, obj, act (found ${requestTokens ?? 0} values)`,
    );
  }
  const rules = validatePolicy(files.policyFile, policyText, model);
  let enforcer: Enforcer;
  try {
    // StringAdapter refuses an empty string; an empty policy is legal (deny everything).
    enforcer = await newEnforcer(model, new StringAdapter(policyText === '' ? '\n' : policyText));
  } catch (err) {
    throw new AclLoadError(files.policyFile, `cannot be loaded: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    // Evaluate now, so a broken matcher fails the load instead of the first call: once
    // with blanks, once with the first rule as the request (so `&&` cannot short-circuit).
    enforcer.enforceSync('', '', '');
    const first = model.model.get('p')?.get('p')?.policy[0];
    if (first) enforcer.enforceSync(first[0] ?? '', first[1] ?? '', first[2] ?? '');
  } catch (err) {
    throw new AclLoadError(
      files.modelFile,
      `the matcher cannot be evaluated: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return { enforcer, decisions: new Map(), rules };
}

/** Decides whether a subject may perform an action. Never throws for "deny". */
export class Authorizer {
  readonly #files: AclFiles | undefined;
  readonly #cacheSize: number;
  #loaded: Loaded | undefined;
  #reloading: Promise<unknown> = Promise.resolve();
  #evaluations = 0;
  #cacheHits = 0;
  #evaluationErrors = 0;
  #loads = 0;

  private constructor(files: AclFiles | undefined, cacheSize: number) {
    this.#files = files;
    this.#cacheSize = cacheSize;
  }

  /**
   * Loads the model and policy files (both or neither). Fails with `AclLoadError` naming
   * the file when one cannot be read or parsed, and `AclConfigError` when only one is given.
   */
  static async open(options: AuthorizerOptions = {}): Promise<Authorizer> {
    const { modelFile, policyFile } = options;
    if ((modelFile === undefined) !== (policyFile === undefined)) {
      throw new AclConfigError(
        modelFile === undefined
          ? `an ACL policy file (${policyFile}) needs a model file too (--acl-model-file)`
          : `an ACL model file (${modelFile}) needs a policy file too (--acl-policy-file)`,
      );
    }
    const files =
      modelFile !== undefined && policyFile !== undefined ? { modelFile, policyFile } : undefined;
    const authorizer = new Authorizer(files, options.cacheSize ?? 10_000);
    if (files) {
      authorizer.#loaded = await loadAcl(files);
      authorizer.#loads++;
    }
    return authorizer;
  }

  get mode(): AuthorizerMode {
    return this.#files ? 'acl' : 'allow-authenticated';
  }

  /** The ACL files, when in `acl` mode. */
  get files(): AclFiles | undefined {
    return this.#files;
  }

  /** Rules in the current policy (0 in `allow-authenticated` mode). */
  get rules(): number {
    return this.#loaded?.rules ?? 0;
  }

  get stats(): AuthorizerStats {
    return {
      evaluations: this.#evaluations,
      cacheHits: this.#cacheHits,
      evaluationErrors: this.#evaluationErrors,
      loads: this.#loads,
    };
  }

  /**
   * True if `subject` may perform `action` on `object`. A blank subject is never allowed.
   * A policy that throws while evaluating denies (fails closed) and is not cached.
   */
  authorize(subject: string, object: string, action: string): boolean {
    if (subject === '') return false;
    const loaded = this.#loaded;
    if (!loaded) return true;
    const key = `${subject}\u0000${object}\u0000${action}`;
    const cached = loaded.decisions.get(key);
    if (cached !== undefined) {
      this.#cacheHits++;
      return cached;
    }
    this.#evaluations++;
    let allowed: boolean;
    try {
      allowed = loaded.enforcer.enforceSync(subject, object, action);
    } catch {
      // The matcher was evaluated at load time, so only an exotic one gets here.
      this.#evaluationErrors++;
      return false;
    }
    if (loaded.decisions.size >= this.#cacheSize) loaded.decisions.clear();
    loaded.decisions.set(key, allowed);
    return allowed;
  }

  /** Like `authorize`, but throws `PermissionDeniedError` naming subject and action. */
  check(subject: string, object: string, action: string): void {
    if (!this.authorize(subject, object, action)) {
      throw new PermissionDeniedError(subject, action, object);
    }
  }

  /**
   * Re-reads the model and policy. The swap is atomic: on any error the old policy
   * stays in force and the returned promise rejects with an `AclLoadError` naming the
   * file. Concurrent calls run one after another. No-op without ACL files.
   */
  reload(): Promise<{ rules: number }> {
    const files = this.#files;
    const run = async () => {
      if (!files) return { rules: 0 };
      const loaded = await loadAcl(files);
      this.#loaded = loaded;
      this.#loads++;
      return { rules: loaded.rules };
    };
    const result = this.#reloading.then(run, run);
    this.#reloading = result;
    return result;
  }
}
