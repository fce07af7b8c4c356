// `npm test` needs the TypeScript toolchain (npm ci) and the template linters from the
// repository's .venv (make setup): say which make target installs them instead of failing
// half-way with "tsc: not found" or "cfn-lint: not found".
import { existsSync } from "node:fs";

const missing = [
  ["node_modules/.bin/tsc", "npm packages (npm ci)"],
  ["../.venv/bin/cfn-lint", "cfn-lint"],
  ["../.venv/bin/checkov", "checkov"],
].filter(([path]) => !existsSync(path));

if (missing.length > 0) {
  console.error(
    `infra tests need ${missing.map(([, what]) => what).join(", ")}: run \`make setup-test\` in the repository root first`,
  );
  process.exit(1);
}
