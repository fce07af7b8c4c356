// The page's sign-in (authorization code with PKCE) in headless Chromium, against a
// stand-in for Cognito's hosted sign-in on loopback that checks what Cognito checks: the
// client, the redirect URI, and that the verifier hashes to the challenge. BASE_URL is the
// function, started by the Rust e2e test with SIGN_IN_URL=http://127.0.0.1:IDP_PORT and
// SIGN_IN_CLIENT_ID=CLIENT_ID (and FEEDBACK_URI, so the page offers corrections); IMAGE is
// a photo to classify once signed in.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { launch } from './browser.mjs';

const { BASE_URL: base, IMAGE: image, IDP_PORT: idpPort, CLIENT_ID: clientId } = process.env;
assert.ok(base && image && idpPort && clientId, 'BASE_URL, IMAGE, IDP_PORT and CLIENT_ID are required');
const redirect = `${base}/`;
const token = 'access-token-for-user-1';
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const idToken = ['{"alg":"none"}', '{"sub":"user-1","email":"ana@example.com"}', ''].map(b64url).join('.');

/** The hosted sign-in: every refusal is recorded, so the test can say why it failed. */
function identityProvider() {
  const codes = new Map();
  const seen = { refusals: [], tokens: 0, logouts: 0 };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${idpPort}`);
    const refuse = (why) => {
      seen.refusals.push(why);
      res.writeHead(400, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ error: 'invalid_request', why }));
    };
    const q = url.searchParams;
    if (url.pathname === '/oauth2/authorize') {
      if (q.get('client_id') !== clientId) return refuse(`client_id ${q.get('client_id')}`);
      if (q.get('redirect_uri') !== redirect) return refuse(`redirect_uri ${q.get('redirect_uri')}`);
      if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256') return refuse('not code with S256');
      const code = `code-${codes.size + 1}`;
      codes.set(code, q.get('code_challenge'));
      res.writeHead(302, { location: `${redirect}?${new URLSearchParams({ code, state: q.get('state') })}` });
      return res.end();
    }
    if (url.pathname === '/oauth2/token' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      const challenge = codes.get(form.get('code'));
      codes.delete(form.get('code'));
      if (form.get('grant_type') !== 'authorization_code') return refuse('grant_type');
      if (form.get('client_id') !== clientId || form.get('redirect_uri') !== redirect) return refuse('client or redirect');
      if (!challenge) return refuse('unknown or reused code');
      const hashed = b64url(createHash('sha256').update(form.get('code_verifier') ?? '').digest());
      if (hashed !== challenge) return refuse('code_verifier does not match the challenge');
      seen.tokens += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': new URL(base).origin });
      return res.end(JSON.stringify({ access_token: token, id_token: idToken, token_type: 'Bearer', expires_in: 3600 }));
    }
    if (url.pathname === '/logout') {
      if (q.get('client_id') !== clientId || q.get('logout_uri') !== redirect) return refuse('logout client or uri');
      seen.logouts += 1;
      res.writeHead(302, { location: q.get('logout_uri') });
      return res.end();
    }
    refuse(`no route ${url.pathname}`);
  });
  return new Promise((done) => server.listen(Number(idpPort), '127.0.0.1', () => done({ server, seen })));
}

test('the page signs in with PKCE, sends the token to /predict, and signs out', async () => {
  const { server, seen } = await identityProvider();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(redirect);
    await page.waitForSelector('#sign-in', { state: 'visible' });
    await page.click('#sign-in');
    await page.waitForSelector('#sign-out', { state: 'visible', timeout: 30000 });
    assert.deepEqual(seen.refusals, []);
    assert.equal(seen.tokens, 1);
    assert.equal(page.url(), redirect, 'the code is gone from the address bar');
    assert.equal(await page.textContent('#who'), 'Signed in as ana@example.com');

    const sent = page.waitForRequest((r) => new URL(r.url()).pathname.endsWith('/predict') && r.method() === 'POST');
    await page.setInputFiles('#file', image);
    assert.equal((await sent).headers().authorization, `Bearer ${token}`);
    await page.waitForSelector('#top-label', { timeout: 30000 });

    // A correction from the page: the photo as sent, the label picked, the same token.
    await page.waitForSelector('#correct', { state: 'visible' });
    await page.selectOption('#correct-label', 'frog');
    const corrected = page.waitForRequest((r) => r.url().endsWith('/feedback') && r.method() === 'POST');
    await page.click('#correct button');
    const request = await corrected;
    assert.equal(request.headers().authorization, `Bearer ${token}`);
    const payload = JSON.parse(request.postData());
    assert.equal(payload.label, 'frog');
    assert.match(payload.image, /^data:image\/jpeg;base64,/);
    await page.waitForSelector('#thanks', { state: 'visible' });
    assert.equal(await page.textContent('#thanks'), 'Thank you: noted as frog.');

    // An expired or revoked token: the gateway answers 401 and the page asks to sign in.
    const isPredict = (url) => url.pathname.endsWith('/predict');
    await page.route(isPredict, (route) =>
      route.fulfill({ status: 401, contentType: 'application/json', body: '{"message":"Unauthorized"}' }));
    // Another file object: choosing the same file again fires no change event.
    await page.setInputFiles('#file', { name: 'again.jpg', mimeType: 'image/jpeg', buffer: readFileSync(image) });
    await page.waitForSelector('#error', { state: 'visible', timeout: 30000 });
    assert.equal(await page.textContent('#error'), 'Sign in to classify photos.');
    assert.ok(await page.isVisible('#sign-in'));
    await page.unroute(isPredict);

    // A replayed code, or a verifier that does not match, gets no token.
    await page.goto(`${redirect}?code=code-1&state=forged`);
    await page.waitForSelector('#error', { state: 'visible' });
    assert.match(await page.textContent('#error'), /Sign-in did not complete/);
    assert.equal(seen.tokens, 1);

    await page.click('#sign-in');
    await page.waitForSelector('#sign-out', { state: 'visible', timeout: 30000 });
    await page.click('#sign-out');
    await page.waitForSelector('#sign-in', { state: 'visible', timeout: 30000 });
    assert.equal(seen.logouts, 1);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('token')), null);
  } finally {
    await browser.close();
    server.close();
  }
});
