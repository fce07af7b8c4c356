// src/schema.ts is generated from openapi.yaml; this fails when it is stale
// (run `npm run generate` and commit the result).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { root } from './server.mjs';

test('the generated types match openapi.yaml', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'schema-')), 'schema.ts');
  execFileSync('npx', ['openapi-typescript', join(root, 'openapi.yaml'), '--output', out], { stdio: 'ignore' });
  const committed = readFileSync(join(root, 'clients/typescript/src/schema.ts'), 'utf8');
  assert.equal(readFileSync(out, 'utf8'), committed, 'src/schema.ts is stale: npm run generate');
});
