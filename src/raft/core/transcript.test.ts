// Transcript tests: each src/raft/testdata/*.txt is a script of commands, each followed
// by the output it must print (every Ready, message and state change). A difference
// fails the test; `UPDATE=1` rewrites the expected output after a deliberate change
// (read the diff before committing it).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { formatTranscript, parseTranscript, runTranscript } from '../testing/interaction.js';

// The compiled test runs from dist/src/raft/core; the scripts stay in the source tree.
const TESTDATA = fileURLToPath(new URL('../../../../src/raft/testdata/', import.meta.url));
const UPDATE = process.env['UPDATE'] === '1';

const REQUIRED = [
  'async_storage_writes.txt',
  'check_quorum_pre_vote_one_way.txt',
  'commit_index_regression.txt',
  'learner_promotion_unseen.txt',
  'slow_follower_after_compaction.txt',
  'snapshot_via_append_response.txt',
];

const files = readdirSync(TESTDATA)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('raft transcripts', () => {
  it('has every required transcript', () => {
    for (const f of REQUIRED) assert.ok(files.includes(f), `${f} in ${TESTDATA}`);
  });

  for (const file of files) {
    it(file.replace(/\.txt$/, ''), () => {
      const path = join(TESTDATA, file);
      const text = readFileSync(path, 'utf8');
      const parsed = parseTranscript(text);
      const outputs = runTranscript(parsed.blocks);
      const actual = formatTranscript(parsed, outputs);
      if (UPDATE) {
        if (actual !== text) writeFileSync(path, actual);
        return;
      }
      // Compare block by block so that a failure names the command.
      parsed.blocks.forEach((b, k) => {
        assert.deepEqual(
          outputs[k],
          b.expected,
          `${file}:${b.line}: ${b.command}\n(run with UPDATE=1 to rewrite after a deliberate change)`,
        );
      });
      assert.equal(actual, text);
    });
  }
});
