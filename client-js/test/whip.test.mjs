// The simulcast layers the library asks a browser for, by the camera's width.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulcastEncodings } from '../lib/whip.js';

const track = (width) => ({ kind: 'video', getSettings: () => ({ width }) });

test('a 1280 px camera sends three layers: a quarter, half and full size', () => {
  assert.deepEqual(simulcastEncodings(track(1280)), [
    { rid: 'q', scaleResolutionDownBy: 4 },
    { rid: 'h', scaleResolutionDownBy: 2 },
    { rid: 'f', scaleResolutionDownBy: 1 },
  ]);
  assert.equal(simulcastEncodings(track(960)).length, 3);
});

test('a 640 px camera sends two layers and a small one just one', () => {
  assert.deepEqual(simulcastEncodings(track(640)).map((e) => e.rid), ['h', 'f']);
  assert.equal(simulcastEncodings(track(479)), undefined);
  assert.equal(simulcastEncodings({ kind: 'video', getSettings: () => ({}) }), undefined);
});
