// Fuzzes readClientHello with random bytes and with mutations of well-formed hellos
// (bit flips, byte writes, truncations, insertions, length-field edits, splices).
// It checks that nothing throws, that every answer has a valid shape, and that no
// single call is slow. `npm run fuzz:client-hello` runs 1,000,000 inputs; the test
// suite runs a bounded number.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { buildClientHello, readClientHello, type ClientHelloResult } from './client-hello.js';

export interface FuzzOptions {
  readonly iterations: number;
  readonly seed?: number;
  /**
   * A call slower than this, again on each of three retries, counts as a hang (one slow
   * call alone is a GC pause or a busy machine). Default 50 ms.
   */
  readonly maxCallMs?: number;
}

export interface FuzzReport {
  readonly iterations: number;
  readonly seed: number;
  readonly counts: { readonly tls: number; readonly incomplete: number; readonly notTls: number };
  readonly slowestCallMs: number;
  readonly elapsedMs: number;
}

export class FuzzFailureError extends Error {
  override readonly name = 'FuzzFailureError';
  constructor(
    message: string,
    readonly input: Uint8Array,
    options?: ErrorOptions,
  ) {
    super(`${message} (input ${Buffer.from(input).toString('hex').slice(0, 400)})`, options);
  }
}

/** xorshift32: deterministic, so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const NAMES = ['h2', 'http/1.1', 'commitlog-raft/1', 'x', 'spdy/3', ''.padEnd(255, 'a')];

export function fuzzClientHello(o: FuzzOptions): FuzzReport {
  const seed = o.seed ?? Date.now() >>> 0;
  const next = rng(seed);
  const below = (n: number): number => next() % n;
  const maxCallMs = o.maxCallMs ?? 50;
  // A pool of valid hellos to mutate, with ALPN, SNI, extra extensions and record splits.
  const seeds: Uint8Array[] = [];
  for (let k = 0; k < 64; k++) {
    const alpn = Array.from({ length: below(4) }, () => NAMES[below(NAMES.length)]!);
    const extensions: [number, Uint8Array][] = Array.from({ length: below(4) }, () => [
      0x0020 + below(0x100),
      Uint8Array.from({ length: below(40) }, () => below(256)),
    ]);
    seeds.push(
      buildClientHello({
        alpn,
        ...(below(2) === 0 ? { sni: `node-${below(1000)}.example` } : {}),
        extensions,
        recordSize: below(3) === 0 ? 1 + below(200) : undefined,
      }),
    );
  }
  const counts = { tls: 0, incomplete: 0, notTls: 0 };
  let slowest = 0;
  const started = performance.now();
  for (let i = 0; i < o.iterations; i++) {
    const input = makeInput(i, seeds, below, next);
    const t0 = performance.now();
    let result: ClientHelloResult;
    try {
      result = readClientHello(input);
    } catch (e) {
      throw new FuzzFailureError(`readClientHello threw (seed ${seed}, input ${i})`, input, {
        cause: e,
      });
    }
    const took = performance.now() - t0;
    if (took > slowest) slowest = took;
    if (took > maxCallMs && isSlow(input, maxCallMs))
      throw new FuzzFailureError(`a call took ${took.toFixed(1)} ms (seed ${seed})`, input);
    if (result === 'incomplete') counts.incomplete++;
    else if (result === 'not-tls') counts.notTls++;
    else {
      if (
        !Array.isArray(result.alpn) ||
        result.alpn.some((a) => typeof a !== 'string' || a.length === 0 || a.length > 255) ||
        (result.sni !== undefined && typeof result.sni !== 'string')
      )
        throw new FuzzFailureError(`bad result shape (seed ${seed})`, input);
      counts.tls++;
    }
  }
  return {
    iterations: o.iterations,
    seed,
    counts,
    slowestCallMs: slowest,
    elapsedMs: performance.now() - started,
  };
}

function isSlow(input: Uint8Array, maxCallMs: number): boolean {
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    readClientHello(input);
    if (performance.now() - t0 <= maxCallMs) return false;
  }
  return true;
}

function makeInput(
  i: number,
  seeds: readonly Uint8Array[],
  below: (n: number) => number,
  next: () => number,
): Uint8Array {
  const kind = i % 8;
  if (kind === 0) {
    // Pure noise, sometimes behind a plausible record header.
    const out = Uint8Array.from({ length: below(600) }, () => next() & 0xff);
    if (below(2) === 0 && out.length > 3) {
      out[0] = 0x16;
      out[1] = 0x03;
    }
    return out;
  }
  const base = seeds[below(seeds.length)]!;
  const out = Uint8Array.from(base);
  const edits = 1 + below(4);
  let cur = out;
  for (let e = 0; e < edits; e++) {
    if (cur.length === 0) break;
    switch (below(6)) {
      case 0: // bit flip
        cur[below(cur.length)]! ^= 1 << below(8);
        break;
      case 1: // byte write, biased to small/boundary values that hit length fields
        cur[below(cur.length)] = [0, 1, 0xff, 0x7f, 0x80, 0x20, next() & 0xff][below(7)]!;
        break;
      case 2: // truncate
        cur = cur.subarray(0, below(cur.length + 1));
        break;
      case 3: {
        // insert random bytes
        const at = below(cur.length + 1);
        const ins = Uint8Array.from({ length: 1 + below(8) }, () => next() & 0xff);
        const grown = new Uint8Array(cur.length + ins.length);
        grown.set(cur.subarray(0, at));
        grown.set(ins, at);
        grown.set(cur.subarray(at), at + ins.length);
        cur = grown;
        break;
      }
      case 4: {
        // overwrite a 16-bit word (most length fields are 16 bits)
        const at = below(cur.length);
        const v = [0, 0xffff, 0x4000, 0x4001, next() & 0xffff][below(5)]!;
        cur[at] = v >> 8;
        if (at + 1 < cur.length) cur[at + 1] = v & 0xff;
        break;
      }
      default: {
        // splice with another seed
        const other = seeds[below(seeds.length)]!;
        const cut = below(Math.min(cur.length, other.length) + 1);
        const joined = new Uint8Array(cut + other.length - cut);
        joined.set(cur.subarray(0, cut));
        joined.set(other.subarray(cut), cut);
        cur = joined;
      }
    }
  }
  return cur;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string): string | undefined => {
    const k = process.argv.indexOf(name);
    return k >= 0 ? process.argv[k + 1] : undefined;
  };
  const iterations = Number(arg('--iterations') ?? 1_000_000);
  const seedArg = arg('--seed');
  const report = fuzzClientHello({
    iterations,
    ...(seedArg !== undefined ? { seed: Number(seedArg) } : {}),
  });
  console.log(
    `fuzz:client-hello ${report.iterations} inputs, seed ${report.seed}: ` +
      `${report.counts.tls} parsed, ${report.counts.incomplete} incomplete, ` +
      `${report.counts.notTls} not-tls; slowest call ${report.slowestCallMs.toFixed(3)} ms; ` +
      `${(report.elapsedMs / 1000).toFixed(1)} s; no exception, no hang`,
  );
}
