// `npm run generate`: rewrite crds/generated/ from crds/*.yaml.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from './generate.js';
import { CRD_SOURCES, GENERATED_SCHEMAS, GENERATED_TYPES, GENERATED_VALIDATORS } from './paths.js';
import { repoRoot } from '../../lib/package-root.js';

const root = repoRoot();
const out = generate(CRD_SOURCES.map((path) => ({ path, text: readFileSync(join(root, path), 'utf8') })));
writeFileSync(join(root, GENERATED_TYPES), out.types);
writeFileSync(join(root, GENERATED_SCHEMAS), out.crds);
writeFileSync(join(root, GENERATED_VALIDATORS), out.validators);
for (const [path, text] of Object.entries(out.manifests)) writeFileSync(join(root, path), text);
console.log(`wrote ${[GENERATED_TYPES, GENERATED_SCHEMAS, GENERATED_VALIDATORS, ...Object.keys(out.manifests)].join(', ')}`);
