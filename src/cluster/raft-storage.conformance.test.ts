// Raft's storage conformance suite, run against the storage engine adapter: the same
// contract the in-memory ports meet, including reopening after a crash at every step.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runHardStateConformance, runLogStorageConformance } from '../raft/testing/index.js';

import { RaftStorage } from './raft-storage.js';

async function fixture<T>(pick: (s: RaftStorage) => T, fsync: 'always' | 'never') {
  const dir = await mkdtemp(join(tmpdir(), 'raft-storage-conf-'));
  const open = new Map<T, RaftStorage>();
  return {
    async open(): Promise<T> {
      const s = await RaftStorage.open({
        dir,
        fsync,
        maxRecordBytes: 1 << 20,
        maxStoreBytes: 4096,
      });
      const port = pick(s);
      open.set(port, s);
      return port;
    },
    // A crash: the files stay as the last writes left them; nothing is flushed or
    // written on the way down (closing the log only releases its file handles).
    async crash(port: T): Promise<void> {
      const s = open.get(port);
      open.delete(port);
      await s?.log.close();
    },
    async dispose(): Promise<void> {
      for (const s of open.values()) await s.log.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

runLogStorageConformance('RaftStorage over the storage engine', () => fixture((s) => s, 'always'), {
  snapshotData: true,
});
runHardStateConformance('RaftStorage hard-state file', () =>
  fixture((s) => s.hardStates, 'always'),
);
