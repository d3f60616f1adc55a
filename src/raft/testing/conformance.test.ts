import { MemoryHardStateStorage, MemoryLogStorage } from './memory.js';
import { runHardStateConformance, runLogStorageConformance } from './conformance.js';

runLogStorageConformance(
  'MemoryLogStorage',
  () => {
    // The object is its own backing state: it outlives a "crash" as a disk does.
    const storage = new MemoryLogStorage();
    return { open: async () => storage };
  },
  { snapshotData: true },
);

runHardStateConformance(
  'MemoryHardStateStorage',
  () => {
    const storage = new MemoryHardStateStorage();
    return { open: async () => storage, crash: async () => storage.crash() };
  },
  { losesUnsynced: true },
);
