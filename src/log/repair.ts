// The offline repair of a log directory that will not open: find the first damage (a
// record that fails its checksum, a sealed segment emptied or cut short, a gap), and
// cut the log there. A plan is read from the files without changing them (the dry
// run); applying it deletes the segments after the damage and truncates the damaged
// one. Everything from the cut on is gone: on a cluster member it comes back from the
// leader, on a single node it is lost.
import { syncDirectory, type LogFs, nodeLogFs } from './fs.js';
import { NAME_RE, RESET_MARKER, findFrameAfter, scanFrames } from './recovery.js';
import { INDEX_SUFFIX, STORE_SUFFIX, ignoreMissing, segmentPaths } from './segment.js';

export interface RepairPlan {
  readonly dir: string;
  /** Where the log is cut; absent: every segment checks out, nothing to do. */
  readonly cut?: {
    readonly file: string;
    /** The store is truncated to this many bytes. */
    readonly position: number;
    /** Bytes cut off that store. */
    readonly bytes: number;
    /** The first offset dropped. */
    readonly fromOffset: bigint;
    readonly reason: string;
  };
  /** Files deleted: the segments after the cut, and the cut segment's index (rebuilt on open). */
  readonly remove: readonly string[];
  /** One past the last offset the files hold today, when the last segment reads whole. */
  readonly endOffset?: bigint;
  /** Segments found. */
  readonly segments: number;
}

export interface RepairOptions {
  /** The log's largest record (a frame claiming more is damage). */
  readonly maxRecordBytes: number;
  readonly fs?: LogFs;
}

/** Reads every segment in full and says what a repair would do; changes nothing. */
export async function planRepair(dir: string, o: RepairOptions): Promise<RepairPlan> {
  const fs = o.fs ?? nodeLogFs;
  const names = await fs.readdir(dir);
  const found = new Map<bigint, { store: boolean; index: boolean }>();
  for (const name of names) {
    const match = NAME_RE.exec(name);
    if (match === null) continue;
    const base = BigInt(match[1] as string);
    const entry = found.get(base) ?? { store: false, index: false };
    if (match[2] === 'store') entry.store = true;
    else entry.index = true;
    found.set(base, entry);
  }
  if (names.includes(RESET_MARKER)) {
    // An interrupted reset: opening the log finishes it, and the segments go anyway.
    return { dir, remove: [], segments: found.size };
  }
  const bases = [...found.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const after = (i: number): string[] =>
    bases.slice(i).flatMap((b) => {
      const files = found.get(b) as { store: boolean; index: boolean };
      const paths = segmentPaths(dir, b);
      return [...(files.store ? [paths.store] : []), ...(files.index ? [paths.index] : [])];
    });
  // Where the log ends today, for the report: the last segment, read whole.
  const end = async (): Promise<{ endOffset?: bigint }> => {
    const base = bases.at(-1);
    if (base === undefined || !found.get(base)?.store) return {};
    const scan = scanFrames(await fs.readFile(segmentPaths(dir, base).store), o.maxRecordBytes);
    return scan.problem === undefined ? { endOffset: base + BigInt(scan.count) } : {};
  };
  let previous: { base: bigint; next: bigint; size: number; index: boolean } | undefined;
  for (const [i, base] of bases.entries()) {
    const files = found.get(base) as { store: boolean; index: boolean };
    const { store, index } = segmentPaths(dir, base);
    const cutPrevious = async (reason: string): Promise<RepairPlan> => {
      const prev = previous as NonNullable<typeof previous>;
      const prevPaths = segmentPaths(dir, prev.base);
      return {
        dir,
        cut: {
          file: prevPaths.store,
          position: prev.size,
          bytes: 0,
          fromOffset: prev.next,
          reason,
        },
        remove: [...(prev.index ? [prevPaths.index] : []), ...after(i)],
        segments: bases.length,
        ...(await end()),
      };
    };
    if (!files.store) {
      if (previous === undefined) {
        return { dir, remove: after(0), segments: bases.length }; // nothing readable at all
      }
      return cutPrevious(`the next segment's store ${store} is missing (its index is there)`);
    }
    if (previous !== undefined && previous.next !== base) {
      const prevStore = segmentPaths(dir, previous.base).store;
      return cutPrevious(
        previous.next === previous.base
          ? `${prevStore} holds no records, but the next segment starts at offset ${base} (the file was emptied)`
          : `${prevStore} ends before offset ${previous.next}, but the next segment starts at offset ${base}`,
      );
    }
    const data = await fs.readFile(store);
    const scan = scanFrames(data, o.maxRecordBytes);
    const last = i === bases.length - 1;
    if (scan.problem !== undefined) {
      const torn = last && findFrameAfter(data, scan.validBytes, o.maxRecordBytes) === undefined;
      return {
        dir,
        cut: {
          file: store,
          position: scan.validBytes,
          bytes: data.length - scan.validBytes,
          fromOffset: base + BigInt(scan.count),
          reason: torn ? `torn tail: ${scan.problem}` : `damaged record: ${scan.problem}`,
        },
        remove: [...(files.index ? [index] : []), ...after(i + 1)],
        segments: bases.length,
        ...(last ? {} : await end()),
      };
    }
    previous = { base, next: base + BigInt(scan.count), size: data.length, index: files.index };
  }
  return {
    dir,
    remove: [],
    segments: bases.length,
    ...(previous ? { endOffset: previous.next } : {}),
  };
}

/**
 * Carries out a plan: deletes the later segments first, then truncates the damaged
 * store, so that a crash part-way leaves a directory the same plan still repairs.
 */
export async function applyRepair(plan: RepairPlan, fs: LogFs = nodeLogFs): Promise<void> {
  const later = [...plan.remove].sort().reverse();
  for (const file of later) await fs.unlink(file).catch(ignoreMissing);
  await syncDirectory(fs, plan.dir);
  if (plan.cut === undefined) return;
  const handle = await fs.open(plan.cut.file, 'r+');
  try {
    await handle.truncate(plan.cut.position);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** A plan as lines for a person: what is wrong, what goes, what stays. */
export function describeRepair(plan: RepairPlan, unit = 'offsets from'): string[] {
  if (plan.cut === undefined && plan.remove.length === 0) {
    return [
      `${plan.dir}: ${plan.segments} segments, nothing to repair` +
        (plan.endOffset !== undefined ? ` (the log ends before offset ${plan.endOffset})` : ''),
    ];
  }
  const lines: string[] = [];
  if (plan.cut) {
    lines.push(`damage: ${plan.cut.reason}`);
    lines.push(
      `cut: ${plan.cut.file} truncated to ${plan.cut.position} bytes (${plan.cut.bytes} bytes dropped); ` +
        `${unit} ${plan.cut.fromOffset} on are dropped` +
        (plan.endOffset !== undefined ? ` (the log ended before ${plan.endOffset})` : ''),
    );
  }
  for (const file of plan.remove) {
    lines.push(
      `delete: ${file}${file.endsWith(INDEX_SUFFIX) && plan.cut && file.replace(INDEX_SUFFIX, STORE_SUFFIX) === plan.cut.file ? ' (rebuilt on open)' : ''}`,
    );
  }
  return lines;
}
