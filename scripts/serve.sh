#!/usr/bin/env bash
# serve.sh BINARY PORT: the function's binary behind cargo lambda's emulator of the Lambda
# runtime API and function URLs (API Gateway v2 events) on 127.0.0.1:PORT, as the tests
# serve it. Ctrl-C stops both. Extra environment (MODEL_URI, ALLOWED_ORIGINS, ...) passes
# through to the function.
set -euo pipefail
binary=$1 port=$2
cargo lambda watch --only-lambda-apis --disable-cors --invoke-address 127.0.0.1 --invoke-port "$port" &
emulator=$!
trap 'kill $emulator 2>/dev/null' EXIT
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/classify" AWS_LAMBDA_FUNCTION_NAME=classify \
AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 \
  "$binary"
