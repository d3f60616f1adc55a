// Configuration entries carry the whole new ConfState, so a follower needs no history
// to interpret one, and a truncated configuration entry is undone by looking back.
import type { ConfState, NodeId } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfState(conf: ConfState): Uint8Array {
  return encoder.encode(JSON.stringify(conf));
}

export function decodeConfState(data: Uint8Array): ConfState {
  const v = JSON.parse(decoder.decode(data)) as Partial<ConfState>;
  return {
    voters: Array.isArray(v.voters) ? v.voters.map(String) : [],
    learners: Array.isArray(v.learners) ? v.learners.map(String) : [],
    addresses: typeof v.addresses === 'object' && v.addresses !== null ? { ...v.addresses } : {},
  };
}

export function isVoter(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id);
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

/** The index that a majority of `matches` has reached (0 for an empty list). */
export function quorumIndex(matches: number[]): number {
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[matches.length >> 1 /* majority - 1 */]!;
}

export function majority(n: number): number {
  return (n >> 1) + 1;
}
