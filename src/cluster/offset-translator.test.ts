import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import type { EntryType } from '../raft/index.js';

import { OffsetTranslator } from './offset-translator.js';

type Op =
  | { kind: 'append'; type: EntryType; termBump: boolean }
  | { kind: 'truncate'; back: number }
  | { kind: 'compact'; ahead: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      type: fc.constantFrom<EntryType>('normal', 'normal', 'normal', 'noop', 'config'),
      termBump: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), back: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), ahead: fc.nat(6) }) },
);

// The model: every entry kept in an array, offsets counted by walking it.
interface ModelEntry {
  index: number;
  term: number;
  type: EntryType;
}

test('translator agrees with a walk over every entry (append, truncate, compact, checkpoint)', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 120 }), fc.nat(20), (ops, baseOffsetSeed) => {
      const baseIndex = 1;
      const baseOffset = BigInt(baseOffsetSeed);
      let t = OffsetTranslator.empty(baseIndex, baseOffset);
      // All entries ever kept (compaction only moves the start).
      let model: ModelEntry[] = [];
      let start = baseIndex;
      let term = 1;
      for (const op of ops) {
        const last = model.length ? model[model.length - 1]!.index : start - 1;
        if (op.kind === 'append') {
          if (op.termBump) term++;
          t.append(last + 1, term, op.type);
          model.push({ index: last + 1, term, type: op.type });
        } else if (op.kind === 'truncate') {
          const from = Math.max(start, last + 1 - op.back);
          t.truncate(from);
          model = model.filter((e) => e.index < from);
        } else {
          const to = Math.min(start + op.ahead, last + 1);
          t.compact(to);
          start = Math.max(start, to);
        }
        // Round-trip through the checkpoint now and then.
        if (model.length % 7 === 3) t = OffsetTranslator.decode(t.encode(t.lastIndex), 'mem');
        // Offsets of data entries, counted from the beginning of time.
        let off = baseOffset;
        for (const e of model) {
          if (e.index >= start) {
            assert.equal(t.termAt(e.index), e.term, `term at ${e.index}`);
            assert.equal(t.isData(e.index), e.type === 'normal');
            if (e.type === 'normal') {
              assert.equal(t.offsetOf(e.index), off, `offsetOf(${e.index})`);
              assert.equal(t.indexOf(off), e.index, `indexOf(${off})`);
            }
            assert.equal(t.endOffset(e.index), off + (e.type === 'normal' ? 1n : 0n));
          }
          if (e.type === 'normal') off++;
        }
        assert.equal(t.lastIndex, model.length ? model[model.length - 1]!.index : start - 1);
      }
    }),
    { numRuns: 300 },
  );
});

test('a checkpoint covers committed entries only', () => {
  const t = OffsetTranslator.empty(1, 0n);
  t.append(1, 1, 'noop');
  t.append(2, 1, 'normal');
  t.append(3, 2, 'noop');
  t.append(4, 2, 'normal');
  const back = OffsetTranslator.decode(t.encode(2), 'mem');
  assert.equal(back.lastIndex, 2);
  assert.equal(back.termAt(3), undefined);
  assert.equal(back.offsetOf(2), 0n);
  back.append(3, 3, 'normal');
  assert.equal(back.offsetOf(3), 1n);
});
