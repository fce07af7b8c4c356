// The function's page (GET /) in headless Chromium: a real image gets the API's label,
// a non-image gets a plain-words error. BASE_URL points at the running function;
// the Rust e2e test starts it under `cargo lambda watch` and runs this file.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { launch } from './browser.mjs';

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
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    await page.goto(`${base}/`);
    assert.equal(await page.isVisible('#account'), false, 'no sign-in on a stack without it');
    await page.setInputFiles('#file', image);
    await page.waitForSelector('#top-label', { timeout: 30000 });
    assert.equal(await page.textContent('#top-label'), api.label);
    const bars = await page.locator('#result .row').count();
    assert.equal(bars, 5);
    // Where it looked: the map lies over the photo, the box the same size, and hides on request.
    await page.waitForSelector('#saliency', { state: 'visible', timeout: 30000 });
    const [photoBox, mapBox] = [await page.locator('#preview').boundingBox(), await page.locator('#saliency').boundingBox()];
    for (const k of ['x', 'y', 'width', 'height']) assert.ok(Math.abs(photoBox[k] - mapBox[k]) < 1.5, `${k}: ${photoBox[k]} vs ${mapBox[k]}`);
    await page.uncheck('#show-looked');
    assert.equal(await page.isVisible('#saliency'), false);
    await page.check('#show-looked');
    assert.equal(await page.isVisible('#correct'), false, 'no corrections on a stack without feedback');
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

    // A 12 MP phone photo: the page scales it down before upload, so the request stays
    // small and the answer comes back.
    const bigB64 = await page.evaluate(async () => {
      const img = document.getElementById('preview');
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = 4032; canvas.height = 3024;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      for (let i = 0; i < 20000; i++) { // grain, so the JPEG is as large as a camera's
        ctx.fillStyle = `rgb(${(i * 37) % 256},${(i * 91) % 256},${(i * 53) % 256})`;
        ctx.fillRect((i * 7919) % 4032, (i * 104729) % 3024, 3, 3);
      }
      const blob = await new Promise((done) => canvas.toBlob(done, 'image/jpeg', 0.95));
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let text = '';
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(text);
    });
    const big = Buffer.from(bigB64, 'base64');
    assert.ok(big.length > 1_000_000, `phone-size photo is ${big.length} bytes`);
    // Record what the page hands to fetch (DevTools does not report Blob bodies).
    await page.evaluate(() => {
      const send = window.fetch;
      window.uploads = [];
      window.fetch = (url, init) => {
        if (init && init.body) window.uploads.push({ size: init.body.size, type: init.body.type });
        return send(url, init);
      };
      document.getElementById('result').replaceChildren();
    });
    await page.setInputFiles('#file', { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: big });
    await page.waitForSelector('#top-label', { timeout: 30000 });
    const uploads = await page.evaluate(() => window.uploads);
    assert.equal(uploads.length, 1);
    assert.equal(uploads[0].type, 'image/jpeg');
    assert.ok(uploads[0].size < 200_000, `uploaded ${uploads[0].size} bytes`);
    assert.equal(await page.locator('#result .row').count(), 5);

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
