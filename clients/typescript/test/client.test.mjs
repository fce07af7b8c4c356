// The client against the running function: every input kind, batches, typed errors,
// timeouts, and retries with backoff (429/503 from a stand-in fetch).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ClassifyError, Client } from '../dist/index.js';
import { root, startFunction } from './server.mjs';

const fixtures = join(root, 'tests/fixtures');
const cat = join(fixtures, 'cifar10-val/cat');
let server;
let client;

before(async () => {
  server = await startFunction();
  client = new Client({ baseUrl: server.baseUrl });
});
after(() => server?.stop());

test('health and model describe the served model', async () => {
  const health = await client.health();
  assert.equal(health.status, 'ok');
  const model = await client.model();
  assert.equal(model.model_version, health.model_version);
  assert.equal(model.labels.length, 10);
  assert.ok(model.labels.includes('cat'));
});

test('a path, bytes, a Blob and base64 give the same answer', async () => {
  const path = join(fixtures, 'cat.jpg');
  const bytes = readFileSync(path);
  const answers = [
    await client.classify(path, { topK: 3 }),
    await client.classify(new Uint8Array(bytes), { topK: 3 }),
    await client.classify(new Blob([bytes], { type: 'image/jpeg' }), { topK: 3 }),
    await client.classify({ base64: bytes.toString('base64') }, { topK: 3 }),
  ];
  for (const a of answers) {
    assert.equal(a.label, answers[0].label);
    assert.equal(a.predictions.length, 3);
    assert.ok(Math.abs(a.probability - answers[0].probability) < 1e-6);
  }
  assert.equal(answers[0].label, 'cat');
});

test('a batch answers each image in order', async () => {
  const files = ['airplane', 'ship', 'truck'].map((c) => {
    const dir = join(fixtures, 'cifar10-val', c);
    return join(dir, readdir(dir)[0]);
  });
  const batch = await client.classifyBatch(files, { topK: 2 });
  assert.equal(batch.results.length, 3);
  for (const r of batch.results) assert.equal(r.predictions.length, 2);
  const single = await client.classify(files[1], { topK: 2 });
  assert.equal(batch.results[1].label, single.label);
});

test('answers carry a prediction set and an ood score; explain adds where it looked', async () => {
  const path = join(fixtures, 'cat.jpg');
  const plain = await client.classify(path);
  assert.equal(plain.prediction_set[0], plain.label);
  assert.equal(typeof plain.ood_score, 'number');
  assert.equal(plain.saliency, undefined);
  for (const input of [path, { base64: readFileSync(path).toString('base64') }]) {
    const explained = await client.classify(input, { explain: true });
    assert.equal(explained.saliency.label, explained.label);
    assert.equal(explained.saliency.values.length, explained.saliency.width * explained.saliency.height);
    assert.ok(explained.saliency.png.length > 0);
  }
  const model = await client.model();
  assert.equal(model.uncertainty.coverage, 0.9);
});

test('min_probability turns a low answer into no label', async () => {
  const r = await client.classify(join(fixtures, 'cat.jpg'), { minProbability: 1 });
  assert.equal(r.label, null);
  assert.equal(r.matched, false);
});

test('refusals are typed errors with the API code', async () => {
  await assert.rejects(client.classify(new Uint8Array([1, 2, 3, 4])), (e) => {
    assert.ok(e instanceof ClassifyError);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'invalid_image');
    assert.equal(e.retryable, false);
    assert.ok(e.requestId && e.requestId.length > 4, `request id ${e.requestId}`);
    return true;
  });
  await assert.rejects(client.classify(join(cat, readdir(cat)[0]), { topK: 11 }), { code: 'invalid_top_k' });
  await assert.rejects(client.classifyBatch([]), { code: 'empty_batch' });
});

test('429 and 503 are retried with backoff, then reported', async () => {
  let calls = 0;
  const flaky = async (url, init) => {
    calls += 1;
    if (calls <= 2) return new Response('{"message":"Too Many Requests"}', { status: 429 });
    return fetch(url, init);
  };
  const retrying = new Client({ baseUrl: server.baseUrl, fetch: flaky, backoffMs: 5 });
  assert.equal((await retrying.health()).status, 'ok');
  assert.equal(calls, 3);

  calls = 0;
  const down = async () => { calls += 1; return new Response('Service Unavailable', { status: 503 }); };
  const giving = new Client({ baseUrl: server.baseUrl, fetch: down, retries: 2, backoffMs: 5 });
  await assert.rejects(giving.health(), (e) => e.status === 503 && e.code === 'unavailable');
  assert.equal(calls, 3);
});

test('a slow answer times out as a network error', async () => {
  const hang = (_url, init) => new Promise((_, reject) => {
    init.signal.addEventListener('abort', () => reject(init.signal.reason));
  });
  const slow = new Client({ baseUrl: server.baseUrl, fetch: hang, timeoutMs: 50, retries: 0 });
  await assert.rejects(slow.health(), (e) => e.status === 0 && e.code === 'network' && /50 ms/.test(e.message));
});

test('a bearer token is sent when given', async () => {
  let seen;
  const spy = async (url, init) => { seen = init.headers.Authorization; return fetch(url, init); };
  await new Client({ baseUrl: server.baseUrl, token: 't0ken', fetch: spy }).health();
  assert.equal(seen, 'Bearer t0ken');
});

function readdir(dir) {
  return readdirSync(dir).sort();
}

test('feedback stores a correction by request id or by image, and refuses a foreign label', async () => {
  const { mkdtempSync, readdirSync: list, readFileSync: read } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const store = mkdtempSync(join(tmpdir(), 'feedback-'));
  const withFeedback = await startFunction({ FEEDBACK_URI: `file://${store}/` });
  try {
    const c = new Client({ baseUrl: withFeedback.baseUrl });
    const byId = await c.feedback('cat', { requestId: 'req-123' });
    const image = readFileSync(join(cat, readdirSync(cat)[0]));
    const byImage = await c.feedback('dog', { image });
    assert.ok(byId.feedback_id && byImage.feedback_id && byId.feedback_id !== byImage.feedback_id);
    const days = list(store);
    const records = days.flatMap((d) => list(join(store, d)).map((f) => JSON.parse(read(join(store, d, f), 'utf8'))));
    assert.deepEqual(records.map((r) => r.label).sort(), ['cat', 'dog']);
    assert.equal(records.find((r) => r.label === 'cat').request_id, 'req-123');
    assert.ok(records.find((r) => r.label === 'dog').image.length > 100, 'the 32x32 image is kept');
    await assert.rejects(c.feedback('unicorn', { requestId: 'req-1' }), (e) => e instanceof ClassifyError && e.code === 'invalid_label');
    // Without FEEDBACK_URI the route is not there.
    await assert.rejects(client.feedback('cat', { requestId: 'req-1' }), (e) => e.status === 404 && e.code === 'not_found');
  } finally {
    withFeedback.stop();
  }
});
