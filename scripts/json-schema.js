// Writes the JSON Schemas for editors into config/ from the compiled zod schemas (run `npm run build` first).
const fs = require('node:fs');
const path = require('node:path');
const { jsonSchemaFiles } = require('../dist/config/json-schema');

const dir = path.resolve(__dirname, '..', 'config');
for (const [name, text] of Object.entries(jsonSchemaFiles())) {
  fs.writeFileSync(path.join(dir, name), text);
  console.log(`wrote config/${name}`);
}
