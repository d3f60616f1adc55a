// The checker: a pure function from a run's history (client calls + final replica logs)
// to a verdict. No I/O, no clocks: the same history always gets the same verdict, so
// a failure can be replayed from a saved history.
//
// What it demands (each a violation kind):
//   lost        an acknowledged record is missing from a replica
//   moved       an acknowledged record sits at another offset than it was acknowledged with
//   duplicate   a record (acknowledged or unknown) appears more than once in a replica
//   conflict    two acknowledgements name the same offset
//   phantom     a replica holds a record that no produce sent, or one whose produce failed
//   sparse      a replica's offsets are not dense from 0
//   divergent   replicas differ (length or bytes)
//   changed     a consumer saw bytes at an offset that the final log holds differently
//   vanished    a consumer saw an offset that the final log does not hold
//   gap / repeat  a consumer skipped or re-delivered an offset
//   realtime    an acknowledgement that completed before another produce began got a
//               higher offset (the log's order contradicts real time)
//   recovery    the cluster was not whole again within the bound after the faults stopped
import type { ConsumeOp, History, Operation, ProduceOp, Replica } from './history.js';

export type ViolationKind =
  | 'lost'
  | 'moved'
  | 'duplicate'
  | 'conflict'
  | 'phantom'
  | 'sparse'
  | 'divergent'
  | 'changed'
  | 'vanished'
  | 'gap'
  | 'repeat'
  | 'realtime'
  | 'recovery';

export interface Violation {
  kind: ViolationKind;
  message: string;
  /** The records involved, printable (offset, node, value). */
  records: string[];
}

export interface Verdict {
  valid: boolean;
  /** Up to `maxPerKind` violations of each kind, in the order found. */
  violations: Violation[];
  /** Every violation counted, including those not kept. */
  counts: Partial<Record<ViolationKind, number>>;
  total: number;
  /** Acknowledged records missing (or moved) on at least one replica. */
  lost: number;
  stats: {
    produces: number;
    acknowledged: number;
    failed: number;
    unknown: number;
    unknownPresent: number;
    consumed: number;
    consumers: number;
    replicas: number;
    records: number;
  };
  summary: string;
}

export interface CheckOptions {
  /** Violations kept per kind (all are counted). Default 20. */
  maxPerKind?: number;
}

/** A value as a map key: exact bytes, cheap to build. */
function keyOf(value: Uint8Array): string {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** A value for people: its printable start (values begin with process id and sequence). */
export function showValue(value: Uint8Array): string {
  const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  const head = text.slice(0, 32).replace(/[^\x20-\x7e]/g, '.');
  return `"${head}${text.length > 32 ? '…' : ''}" (${value.byteLength} B)`;
}

function showProduce(op: ProduceOp): string {
  const outcome =
    op.outcome.type === 'ok'
      ? `ok@${op.outcome.offset}`
      : `${op.outcome.type}: ${op.outcome.error}`;
  return `${op.process} ${op.api} produce to ${op.node} [${op.invoke.toFixed(0)}–${op.complete.toFixed(0)} ms] ${outcome} ${showValue(op.value)}`;
}

function showStored(node: string, offset: bigint, value: Uint8Array | undefined): string {
  return `${node}@${offset}: ${value === undefined ? '(absent)' : showValue(value)}`;
}

class Findings {
  readonly kept: Violation[] = [];
  readonly counts: Partial<Record<ViolationKind, number>> = {};
  total = 0;
  constructor(private readonly maxPerKind: number) {}

  add(kind: ViolationKind, message: string, records: string[] = []): void {
    const n = (this.counts[kind] ?? 0) + 1;
    this.counts[kind] = n;
    this.total++;
    if (n <= this.maxPerKind) this.kept.push({ kind, message, records });
  }
}

/** Where each value sits in one replica. */
function indexReplica(replica: Replica): Map<string, bigint[]> {
  const at = new Map<string, bigint[]>();
  for (const r of replica.records) {
    const k = keyOf(r.value);
    const list = at.get(k);
    if (list) list.push(r.offset);
    else at.set(k, [r.offset]);
  }
  return at;
}

function checkDense(replica: Replica, f: Findings): void {
  replica.records.forEach((r, i) => {
    if (r.offset !== BigInt(i)) {
      f.add('sparse', `${replica.node}: record ${i} has offset ${r.offset}`, [
        showStored(replica.node, r.offset, r.value),
      ]);
    }
  });
}

function checkReplicasEqual(replicas: Replica[], f: Findings): void {
  const [first, ...rest] = replicas;
  if (!first) return;
  for (const other of rest) {
    const n = Math.min(first.records.length, other.records.length);
    for (let i = 0; i < n; i++) {
      const a = first.records[i]!;
      const b = other.records[i]!;
      if (a.offset !== b.offset || !sameBytes(a.value, b.value)) {
        f.add('divergent', `${first.node} and ${other.node} differ at record ${i}`, [
          showStored(first.node, a.offset, a.value),
          showStored(other.node, b.offset, b.value),
        ]);
        break; // the first difference is what matters; later ones usually follow from it
      }
    }
    if (first.records.length !== other.records.length) {
      const [longer, shorter] =
        first.records.length > other.records.length ? [first, other] : [other, first];
      const extra = longer.records[shorter.records.length]!;
      f.add(
        'divergent',
        `${first.node} holds ${first.records.length} records, ${other.node} ${other.records.length}`,
        [showStored(longer.node, extra.offset, extra.value), `${shorter.node}: ends before it`],
      );
    }
  }
}

function checkProduces(
  produces: ProduceOp[],
  replicas: Replica[],
  indexes: Map<string, bigint[]>[],
  f: Findings,
): { lost: number; unknownPresent: number } {
  let lost = 0;
  let unknownPresent = 0;
  const sent = new Map<string, ProduceOp>();
  const ackedAt = new Map<bigint, ProduceOp>();
  for (const op of produces) {
    sent.set(keyOf(op.value), op);
    if (op.outcome.type !== 'ok') continue;
    const prior = ackedAt.get(op.outcome.offset);
    if (prior) {
      f.add('conflict', `two produces acknowledged at offset ${op.outcome.offset}`, [
        showProduce(prior),
        showProduce(op),
      ]);
    } else ackedAt.set(op.outcome.offset, op);
  }
  for (const op of produces) {
    const key = keyOf(op.value);
    let missing = false;
    let seenAnywhere = false;
    replicas.forEach((replica, i) => {
      const offsets = indexes[i]!.get(key) ?? [];
      if (offsets.length > 0) seenAnywhere = true;
      if (offsets.length > 1) {
        f.add(
          'duplicate',
          `${replica.node} holds one ${op.outcome.type} record ${offsets.length} times (offsets ${offsets.join(', ')})`,
          [showProduce(op)],
        );
      }
      if (op.outcome.type === 'ok') {
        const want = op.outcome.offset;
        if (offsets.length === 0) {
          missing = true;
          const there = replica.records[Number(want)];
          f.add('lost', `${replica.node} lost a record acknowledged at offset ${want}`, [
            showProduce(op),
            showStored(replica.node, want, there?.value),
          ]);
        } else if (!offsets.includes(want)) {
          missing = true;
          f.add(
            'moved',
            `${replica.node} holds a record acknowledged at ${want} at offset ${offsets.join(', ')}`,
            [showProduce(op)],
          );
        }
      } else if (op.outcome.type === 'failed' && offsets.length > 0) {
        f.add('phantom', `${replica.node} holds a record whose produce failed`, [
          showProduce(op),
          showStored(replica.node, offsets[0]!, op.value),
        ]);
      }
    });
    if (missing) lost++;
    if (op.outcome.type === 'unknown' && seenAnywhere) unknownPresent++;
  }
  for (const replica of replicas) {
    for (const r of replica.records) {
      if (!sent.has(keyOf(r.value))) {
        f.add('phantom', `${replica.node} holds a record no produce sent`, [
          showStored(replica.node, r.offset, r.value),
        ]);
      }
    }
  }
  return { lost, unknownPresent };
}

/** Acknowledged A completed before B was invoked ⇒ offset(A) < offset(B). */
function checkRealTime(produces: ProduceOp[], f: Findings): void {
  const acked = produces
    .filter(
      (op): op is ProduceOp & { outcome: { type: 'ok'; offset: bigint } } =>
        op.outcome.type === 'ok',
    )
    .sort((a, b) =>
      a.outcome.offset < b.outcome.offset ? -1 : a.outcome.offset > b.outcome.offset ? 1 : 0,
    );
  // Walking down from the highest offset, `earliest` is the acknowledgement with the
  // smallest completion time among higher offsets.
  let earliest: (typeof acked)[number] | undefined;
  for (let i = acked.length - 1; i >= 0; i--) {
    const b = acked[i]!;
    if (earliest && earliest.complete < b.invoke) {
      f.add(
        'realtime',
        `offset ${earliest.outcome.offset} was acknowledged before the produce given ${b.outcome.offset} began`,
        [showProduce(earliest), showProduce(b)],
      );
    }
    if (!earliest || b.complete < earliest.complete) earliest = b;
  }
}

function checkConsumers(consumes: ConsumeOp[], replicas: Replica[], f: Findings): number {
  const byProcess = new Map<string, ConsumeOp[]>();
  for (const op of consumes) {
    const list = byProcess.get(op.process);
    if (list) list.push(op);
    else byProcess.set(op.process, [op]);
  }
  for (const [process, ops] of byProcess) {
    let expected = ops[0]!.from;
    for (const op of ops) {
      if (op.outcome.type !== 'ok') continue;
      const offset = op.outcome.offset;
      const seen = `${process} read ${showValue(op.value)} at ${offset} from ${op.node} (stream from ${op.from}, ${op.complete.toFixed(0)} ms)`;
      if (offset > expected) {
        f.add('gap', `${process} skipped offsets ${expected}–${offset - 1n}`, [seen]);
      } else if (offset < expected) {
        f.add('repeat', `${process} was given offset ${offset} again (expected ${expected})`, [
          seen,
        ]);
      }
      expected = offset + 1n;
      for (const replica of replicas) {
        const stored = replica.records[Number(offset)];
        if (stored === undefined || stored.offset !== offset) {
          f.add(
            'vanished',
            `${process} read offset ${offset}, which ${replica.node} does not hold`,
            [seen, showStored(replica.node, offset, stored?.value)],
          );
        } else if (!sameBytes(stored.value, op.value)) {
          f.add(
            'changed',
            `${process} read offset ${offset}, which ${replica.node} holds differently`,
            [seen, showStored(replica.node, offset, stored.value)],
          );
        }
      }
    }
  }
  return byProcess.size;
}

export function check(history: History, opts: CheckOptions = {}): Verdict {
  const f = new Findings(opts.maxPerKind ?? 20);
  const produces = history.operations.filter(
    (o: Operation): o is ProduceOp => o.kind === 'produce',
  );
  const consumes = history.operations.filter(
    (o: Operation): o is ConsumeOp => o.kind === 'consume',
  );
  const { replicas } = history;

  for (const replica of replicas) checkDense(replica, f);
  checkReplicasEqual(replicas, f);
  const indexes = replicas.map(indexReplica);
  const { lost, unknownPresent } = checkProduces(produces, replicas, indexes, f);
  checkRealTime(produces, f);
  const consumers = checkConsumers(consumes, replicas, f);

  const rec = history.recovery;
  if (rec) {
    if (rec.recoveredAt === undefined) {
      f.add('recovery', `not recovered within ${rec.boundMs} ms after the faults stopped`);
    } else if (rec.recoveredAt - rec.faultsStoppedAt > rec.boundMs) {
      f.add(
        'recovery',
        `recovered ${(rec.recoveredAt - rec.faultsStoppedAt).toFixed(0)} ms after the faults stopped (bound ${rec.boundMs} ms)`,
      );
    }
  }

  const count = (t: string) => produces.filter((o) => o.outcome.type === t).length;
  const stats = {
    produces: produces.length,
    acknowledged: count('ok'),
    failed: count('failed'),
    unknown: count('unknown'),
    unknownPresent,
    consumed: consumes.filter((o) => o.outcome.type === 'ok').length,
    consumers,
    replicas: replicas.length,
    records: replicas[0]?.records.length ?? 0,
  };
  const kinds = Object.entries(f.counts)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const summary =
    `checker: ${stats.produces} produces (${stats.acknowledged} ok, ${stats.failed} failed, ` +
    `${stats.unknown} unknown of which ${unknownPresent} present), ${stats.consumed} records consumed ` +
    `by ${consumers} consumers, ${stats.replicas} replicas of ${stats.records} records: ` +
    (f.total === 0 ? 'valid' : `${f.total} violations (${kinds})`);
  return {
    valid: f.total === 0,
    violations: f.kept,
    counts: f.counts,
    total: f.total,
    lost,
    stats,
    summary,
  };
}

/** The verdict for people: the summary line, then each kept violation with its records. */
export function formatVerdict(v: Verdict): string {
  const lines = [v.summary];
  for (const x of v.violations) {
    lines.push(`  ${x.kind}: ${x.message}`);
    for (const r of x.records) lines.push(`      ${r}`);
  }
  const hidden = v.total - v.violations.length;
  if (hidden > 0) lines.push(`  … and ${hidden} more`);
  return lines.join('\n');
}
