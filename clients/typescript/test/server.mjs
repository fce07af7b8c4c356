// The function as `make run` serves it (scripts/serve.sh), on a free loopback port: the
// workspace's release binary behind cargo lambda's runtime-API emulator.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, limitMs, ok) {
  const start = Date.now();
  while (Date.now() - start < limitMs) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready within ${limitMs} ms`);
}

/** Starts the function with `scripts/serve.sh`, as `make run` does; `stop()` ends it. */
export async function startFunction(env = {}) {
  const binary = join(root, 'target/release/classify');
  const venv = join(root, '.venv/bin');
  for (const p of [binary, join(venv, 'cargo-lambda')]) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run \`make test\` (or \`make run\`) first`);
  }
  const port = await freePort();
  const serve = spawn('bash', ['scripts/serve.sh', binary, String(port)], {
    cwd: root,
    stdio: 'ignore',
    detached: true,
    env: { ...process.env, PATH: `${venv}:${process.env.PATH}`, ...env },
  });
  const baseUrl = `http://127.0.0.1:${port}/lambda-url/classify`;
  await until('function', 60_000, async () => (await fetch(`${baseUrl}/health`)).ok);
  return {
    baseUrl,
    stop() {
      // The script, the emulator and the function share its process group.
      try { process.kill(-serve.pid, 'SIGKILL'); } catch { /* already gone */ }
    },
  };
}
