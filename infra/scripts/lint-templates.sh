#!/usr/bin/env bash
# Synthesizes the stacks as each kind of deployment would (the public default, Cognito
# sign-in behind CloudFront, a custom domain on API Gateway, JWT sign-in with every other
# option on, CloudFront and its us-east-1 web ACL stack included, and the managed training
# job), cdk-nag running in each synth, then lints every template with cfn-lint
# (0 errors) and checkov (0 failed checks; each skip carries its reason beside the
# resource in lib/), and the trainer's Dockerfile with checkov. Each linter runs once over
# all the templates: their start-up is most of their time.
set -euo pipefail
cd "$(dirname "$0")/.."
variants=(
  "default|"
  "cognito-edge|-c cognito=true -c callbackUrls=https://app.example.com/callback -c edge=true -c account=123456789012 -c region=eu-west-2"
  "domain|-c domainName=api.example.com -c certificateArn=arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d -c account=123456789012 -c region=eu-west-1"
  "all-options|-c edge=true -c domainName=img.example.com -c certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/4e5f6a7b -c account=123456789012 -c region=eu-west-1 -c edgeRateLimit=500 -c jwtIssuer=https://issuer.example.com -c jwtAudience=app-1,app-2 -c allowedOrigins=https://app.example.com -c alarmEmail=ops@example.com -c tracing=true -c reservedConcurrency=5 -c deployment=Linear10PercentEvery1Minute -c memorySize=2048 -c capturePercent=10 -c feedback=true"
  "training|-c training=true -c trainingSpot=true -c trainingImageTag=abc1234"
)
templates=()
for entry in "${variants[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  out=cdk.out/$name
  # shellcheck disable=SC2086
  npx cdk synth --quiet -c functionCodePath=test/placeholder $args -o "$out" > /dev/null
  echo "$name: cdk synth with cdk-nag AwsSolutions: 0 unacknowledged findings"
  templates+=("$out"/*.template.json)
done
../.venv/bin/cfn-lint --non-zero-exit-code error "${templates[@]}"
echo "cfn-lint: no errors in ${#templates[@]} templates (${templates[*]})"
files=()
for t in "${templates[@]}" ../trainer/Dockerfile; do files+=(-f "$t"); done
../.venv/bin/checkov "${files[@]}" --framework cloudformation dockerfile --skip-download --compact --quiet
