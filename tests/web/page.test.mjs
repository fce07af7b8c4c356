// The function's page (GET /) in headless Chromium: a real image gets the API's label,
// a non-image gets a plain-words error. BASE_URL points at the running function;
// the Rust e2e test starts it under `cargo lambda watch` and runs this file.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

const base = process.env.BASE_URL;
const image = process.env.IMAGE;
assert.ok(base && image, 'BASE_URL and IMAGE are required');

test('page classifies an uploaded photo and explains a bad file', async () => {
  const api = await fetch(`${base}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: readFileSync(image),
  }).then((r) => r.json());
  const profile = mkdtempSync(join(tmpdir(), 'chromium-'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    await page.goto(`${base}/`);
    await page.setInputFiles('#file', image);
    await page.waitForSelector('#top-label', { timeout: 30000 });
    assert.equal(await page.textContent('#top-label'), api.label);
    const bars = await page.locator('#result .row').count();
    assert.equal(bars, 5);
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

    const bad = join(profile, 'notes.txt');
    writeFileSync(bad, 'this is not a picture');
    await page.setInputFiles('#file', bad);
    await page.waitForSelector('#error', { state: 'visible', timeout: 30000 });
    const text = await page.textContent('#error');
    assert.match(text, /not an image/i);
    assert.equal(await page.locator('#result .row').count(), 0);
  } finally {
    await browser.close();
  }
});
