#!/usr/bin/env bash
# Synthesizes the stack as each kind of deployment would (the public default, Cognito
# sign-in, and JWT sign-in with every other option on), cdk-nag running in each synth,
# then lints each template with cfn-lint (0 errors) and checkov (0 failed checks; each
# skip carries its reason beside the resource in lib/classifier-stack.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
variants=(
  "default|"
  "cognito|-c cognito=true -c callbackUrls=https://app.example.com/callback"
  "all-options|-c jwtIssuer=https://issuer.example.com -c jwtAudience=app-1,app-2 -c allowedOrigins=https://app.example.com -c alarmEmail=ops@example.com -c tracing=true -c reservedConcurrency=5 -c deployment=Linear10PercentEvery1Minute -c memorySize=2048"
)
for entry in "${variants[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  out=cdk.out/$name
  # shellcheck disable=SC2086
  npx cdk synth --quiet -c functionCodePath=test/placeholder $args -o "$out" > /dev/null
  echo "$name: cdk synth with cdk-nag AwsSolutions: 0 unacknowledged findings"
  ../.venv/bin/cfn-lint --non-zero-exit-code error "$out/ImageClassifier.template.json"
  echo "$name: cfn-lint: no errors"
  ../.venv/bin/checkov -f "$out/ImageClassifier.template.json" --framework cloudformation \
    --skip-download --compact --quiet | sed "s/^/$name: /"
done
