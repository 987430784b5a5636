'use strict';

// PM2's programmatic API, answered by rsup:
//
//   const pm2 = require('rsup/pm2');
//   pm2.connect((err) => pm2.start({ script: 'app.js', name: 'api' }, ...));
//
// Like `require('pm2')`: an instance ready to use, and the class as
// `custom` for another folder or cwd. Requiring it starts nothing.

const { API } = require('./lib/pm2/api');

module.exports = new API();
module.exports.custom = API;
