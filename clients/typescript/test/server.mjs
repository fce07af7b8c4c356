// The function as `make run` serves it, on a free loopback port: the workspace's release
// binary behind cargo lambda's runtime-API emulator (built by `make test` or `make run`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
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

/** Starts the function; `stop()` ends both processes. */
export async function startFunction(env = {}) {
  const binary = join(root, 'target/release/classify');
  const lambda = join(root, '.venv/bin/cargo-lambda');
  for (const p of [binary, lambda]) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run \`make test\` (or \`make run\`) first`);
  }
  const port = await freePort();
  const emulator = spawn(lambda, ['lambda', 'watch', '--only-lambda-apis', '--disable-cors',
    '--invoke-address', '127.0.0.1', '--invoke-port', String(port)], { cwd: root, stdio: 'ignore', detached: true });
  // A TCP connection, not a request: the emulator's routes wait for a function to answer.
  await until('emulator', 60_000, () => new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  }));
  const fn = spawn(binary, [], {
    cwd: root,
    stdio: 'ignore',
    detached: true,
    env: {
      ...process.env,
      AWS_LAMBDA_RUNTIME_API: `http://127.0.0.1:${port}/.rt/classify`,
      AWS_LAMBDA_FUNCTION_NAME: 'classify',
      AWS_LAMBDA_FUNCTION_VERSION: '1',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024',
      ...env,
    },
  });
  const baseUrl = `http://127.0.0.1:${port}/lambda-url/classify`;
  await until('function', 60_000, async () => (await fetch(`${baseUrl}/health`)).ok);
  return {
    baseUrl,
    stop() {
      for (const p of [fn, emulator]) {
        try { process.kill(-p.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    },
  };
}
