// Reloading the policy when its files change. We watch the directories, not the
// files: editors and `mv` replace a file with a new inode, which a file watch misses.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Authorizer } from './authorizer.js';

export interface AclWatchOptions {
  /** Quiet time after the last change before reloading. Default 100 ms. */
  readonly debounceMs?: number;
  /** Called after each successful reload. */
  readonly onReload?: (result: { rules: number }) => void;
  /** Called when a reload fails; the old policy stays in force. */
  readonly onError?: (err: unknown) => void;
}

/**
 * Reloads `authorizer` when its model or policy file changes. Returns a function that
 * stops watching. Does nothing for an authorizer without ACL files.
 */
export function watchAclFiles(authorizer: Authorizer, options: AclWatchOptions = {}): () => void {
  const files = authorizer.files;
  if (!files) return () => undefined;
  const debounceMs = options.debounceMs ?? 100;
  const targets = [files.modelFile, files.policyFile].map((f) => resolve(f));
  const byDir = new Map<string, Set<string>>();
  for (const t of targets) {
    const names = byDir.get(dirname(t)) ?? new Set<string>();
    names.add(basename(t));
    byDir.set(dirname(t), names);
  }
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      authorizer.reload().then(
        (result) => options.onReload?.(result),
        (err: unknown) => options.onError?.(err),
      );
    }, debounceMs);
  };
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    const watcher = watch(dir, { persistent: false }, (_event, name) => {
      // Some platforms omit the name: reload anyway, it is cheap.
      if (name === null || names.has(name.toString())) schedule();
    });
    watcher.on('error', (err) => options.onError?.(err));
    watchers.push(watcher);
  }
  return () => {
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
