// The built browser bundle (dist/classify-client.js) in headless Chromium: a page on
// another loopback origin picks a file, the client posts it cross-origin (CORS) and shows
// the label the API gives; a non-image shows the API's error code.
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { root, startFunction } from './server.mjs';

const here = join(root, 'clients/typescript');
let api;
let page;

before(async () => {
  api = await startFunction();
  const files = {
    '/': ['text/html', readFileSync(join(here, 'test/page.html'))],
    '/classify-client.js': ['text/javascript', readFileSync(join(here, 'dist/classify-client.js'))],
  };
  page = createServer((req, res) => {
    const [type, body] = files[new URL(req.url, 'http://x').pathname] ?? ['text/plain', 'not found'];
    res.writeHead(type === 'text/plain' ? 404 : 200, { 'content-type': type }).end(body);
  });
  await new Promise((done) => page.listen(0, '127.0.0.1', done));
});
after(() => {
  api?.stop();
  page?.close();
});

test('the bundle classifies a picked file in Chromium', async () => {
  const expected = await fetch(`${api.baseUrl}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: readFileSync(join(root, 'tests/fixtures/ship.jpg')),
  }).then((r) => r.json());
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const tab = await browser.newPage();
    const url = `http://127.0.0.1:${page.address().port}/?api=${encodeURIComponent(api.baseUrl)}`;
    await tab.goto(url);
    await tab.setInputFiles('#file', join(root, 'tests/fixtures/ship.jpg'));
    await tab.waitForSelector('#out[data-label]', { timeout: 30_000 });
    assert.equal(await tab.getAttribute('#out', 'data-label'), expected.label);

    const junk = join(mkdtempSync(join(tmpdir(), 'junk-')), 'not-an-image.jpg');
    writeFileSync(junk, 'definitely not a JPEG');
    await tab.reload();
    await tab.setInputFiles('#file', junk);
    await tab.waitForSelector('#out[data-error]', { timeout: 30_000 });
    assert.equal(await tab.getAttribute('#out', 'data-error'), 'invalid_image');
  } finally {
    await browser.close();
  }
});
