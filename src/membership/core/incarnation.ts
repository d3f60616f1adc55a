// Incarnation numbers travel as u32 and are compared in serial-number arithmetic
// (RFC 1982): `a` is newer than `b` when it is less than 2^31 ahead of it, modulo 2^32.
//
// Why: with plain comparison, a single forged "suspect at 0xFFFFFFFF" made the accused
// member refute with 0xFFFFFFFF + 1, which wraps to 0 on the wire, so its refutation
// looked older than the accusation for ever and the member could never clear itself.
// Under serial arithmetic an accusation 2^31 or more ahead of what a member knows is
// older news and is ignored, and a refutation that wraps past 0xFFFFFFFF is still newer.
// Honest incarnations grow by one per refutation or tag change, so they never come near
// the 2^31 window.

const HALF = 2 ** 31;

/** Largest incarnation step accepted as "newer" (2^31 - 1). */
export const MAX_INCARNATION_STEP = HALF - 1;

/** True when `a` is strictly newer than `b`. */
export function incarnationNewer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < HALF;
}

/**
 * True when `a` is older than `b`. Exactly 2^31 apart counts as older too: RFC 1982
 * leaves it undefined, and news that is neither newer nor older must be refused.
 */
export function incarnationOlder(a: number, b: number): boolean {
  return a !== b && !incarnationNewer(a, b);
}

/** The incarnation after `a`, wrapping at 2^32. */
export function nextIncarnation(a: number): number {
  return (a + 1) >>> 0;
}

/** The newer of two incarnations. */
export function latestIncarnation(a: number, b: number): number {
  return incarnationNewer(a, b) ? a : b;
}
