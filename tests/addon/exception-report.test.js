'use strict';

// What the preload reports of a thrown value (the `data` of PM2's
// `process:exception`); its way to the bus is in pm2-api.test.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { ADDON } = require('./helpers');

const { describe } = require(path.join(ADDON, 'lib', 'exception-report.js'));

test("an error is its own properties and name, each only if JSON can carry it", () => {
  const err = new TypeError('bad');
  err.code = 'E_BAD';
  err.self = err;
  err.big = 1n;
  Object.defineProperty(err, 'broken', {
    enumerable: true,
    get() {
      throw new Error('getter');
    },
  });
  const data = describe(err);
  assert.deepEqual(Object.keys(data).sort(), ['code', 'message', 'name', 'stack']);
  assert.equal(data.name, 'TypeError');
  assert.equal(data.message, 'bad');
  assert.match(data.stack, /^TypeError: bad\n/);
  assert.doesNotThrow(() => JSON.stringify(data));
});

test('a thrown value that is not an error is its message', () => {
  assert.deepEqual(describe('plain text'), { message: 'plain text' });
  assert.deepEqual(describe(42), { message: '42' });
  assert.deepEqual(describe(undefined), { message: 'undefined was thrown' });
  assert.deepEqual(describe(null), { message: 'null' });
  assert.deepEqual(describe({ reason: 'x' }), { reason: 'x', message: '[object Object]' });
});
