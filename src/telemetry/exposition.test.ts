import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExposition, sampleValue } from './exposition.js';

describe('parseExposition', () => {
  it('reads names, escaped labels, special values and skips comments', () => {
    const samples = parseExposition(
      [
        '# HELP x_total help',
        '# TYPE x_total counter',
        'x_total{method="a/b",msg="say \\"hi\\"\\n"} 3',
        'y_bucket{le="+Inf"} 7',
        'z -Inf',
        'w 1.5e-3 1700000000000',
        '',
      ].join('\n'),
    );
    assert.deepEqual(samples, [
      { name: 'x_total', labels: { method: 'a/b', msg: 'say "hi"\n' }, value: 3 },
      { name: 'y_bucket', labels: { le: '+Inf' }, value: 7 },
      { name: 'z', labels: {}, value: -Infinity },
      { name: 'w', labels: {}, value: 0.0015 },
    ]);
    assert.equal(sampleValue(samples, 'x_total', { method: 'a/b' }), 3);
    assert.equal(sampleValue(samples, 'absent_total'), 0);
  });

  it('refuses malformed lines', () => {
    assert.throws(() => parseExposition('x_total{method=a} 1'), SyntaxError);
    assert.throws(() => parseExposition('not a metric'), SyntaxError);
  });

  it('refuses ambiguous lookups', () => {
    const samples = parseExposition('a{x="1"} 1\na{x="2"} 2');
    assert.throws(() => sampleValue(samples, 'a'), /2 samples/);
  });
});
