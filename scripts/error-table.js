// Regenerates the error table in README.md from the compiled catalogue (run `npm run build` first).
const fs = require('node:fs');
const path = require('node:path');
const { catalogue } = require('../dist/errors/catalogue');

const readme = path.resolve(__dirname, '..', 'README.md');
const rows = Object.entries(catalogue).map(([code, e]) => `| \`${code}\` | \`${e.sqlstate}\` | ${e.severity === 'FATAL' ? 'FATAL: ' : ''}${e.message} |`);
const text = fs.readFileSync(readme, 'utf8');
const start = '<!-- error-table:start -->';
const end = '<!-- error-table:end -->';
const next = text.replace(new RegExp(`${start}[\\s\\S]*?${end}`), `${start}\n${rows.join('\n')}\n${end}`);
fs.writeFileSync(readme, next);
console.log(`error table: ${rows.length} codes`);
