import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ClassifierStack, ClassifierStackProps } from '../lib/classifier-stack';
import { Deployment, classifierStacks } from '../lib/stacks';

// Synth needs a code folder; the real one comes from `cargo lambda build --arm64`.
const code = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-'));
fs.writeFileSync(path.join(code, 'bootstrap'), '#!/bin/sh\n');

function synth(props: Partial<ClassifierStackProps> = {}) {
  const app = new App();
  const stack = new ClassifierStack(app, 'Test', { functionCodePath: code, ...props });
  const pack = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(pack);
  return { app, stack, pack, template: Template.fromStack(stack) };
}

test('model bucket: encrypted, versioned, private, SSL-only, access-logged, retained', () => {
  const { template } = synth();
  const buckets = template.findResources('AWS::S3::Bucket', {
    Properties: { VersioningConfiguration: { Status: 'Enabled' }, LoggingConfiguration: Match.anyValue() },
  });
  assert.equal(Object.keys(buckets).length, 1);
  const [id, bucket] = Object.entries(buckets)[0] as [string, any];
  assert.equal(bucket.DeletionPolicy, 'Retain');
  assert.equal(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'AES256');
  assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, {
    BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
  });
  assert.ok(bucket.Properties.LoggingConfiguration.DestinationBucketName);
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    Bucket: { Ref: id },
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    },
  });
});

test('function: arm64 provided.al2023, model pointer, log retention, read only models/', () => {
  const { template } = synth({ reservedConcurrency: 7 });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Runtime: 'provided.al2023',
    Architectures: ['arm64'],
    Handler: 'bootstrap',
    MemorySize: 1024,
    Timeout: 15,
    ReservedConcurrentExecutions: 7,
    Environment: {
      Variables: {
        MODEL_URI: { 'Fn::Join': ['', ['s3://', { Ref: Match.stringLikeRegexp('ModelBucket') }, '/models/latest.json']] },
        ALLOWED_ORIGINS: '*',
        MIN_PROBABILITY: '0',
        ABSTAIN_OUT_OF_DISTRIBUTION: 'false',
        MODEL_REFRESH_SECONDS: '60',
      },
    },
  });
  template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  const policies = template.findResources('AWS::IAM::Policy');
  const statements = Object.values(policies).flatMap((p: any) => p.Properties.PolicyDocument.Statement);
  const s3Resources = statements
    .filter((s: any) => [s.Action].flat().some((a: string) => a.startsWith('s3:')))
    .flatMap((s: any) => [s.Resource].flat());
  assert.ok(s3Resources.length > 0);
  for (const r of s3Resources) {
    const text = JSON.stringify(r);
    assert.ok(!text.includes('"*"'), `no bucket-wide wildcard: ${text}`);
  }
  assert.ok(s3Resources.some((r: any) => JSON.stringify(r).includes('/models/*')));
  assert.ok(!statements.some((s: any) => [s.Action].flat().some((a: string) => a.startsWith('s3:Put'))), 'function cannot write');
});

test('reserved concurrency is left unset by default', () => {
  const { template } = synth();
  const fns = template.findResources('AWS::Lambda::Function');
  for (const f of Object.values(fns) as any[]) assert.equal(f.Properties.ReservedConcurrentExecutions, undefined);
});

test('HTTP API: routes, CORS, throttling, access logs, outputs', () => {
  const { template } = synth({ allowedOrigins: ['https://app.example'] });
  for (const key of ['POST /predict', 'GET /health', 'GET /model', 'GET /']) {
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: key, AuthorizationType: 'NONE' });
  }
  template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
    ProtocolType: 'HTTP',
    CorsConfiguration: { AllowOrigins: ['https://app.example'], AllowMethods: Match.arrayWith(['GET', 'POST']) },
  });
  template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    StageName: '$default',
    DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
    AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
  });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: { ALLOWED_ORIGINS: 'https://app.example' } },
  });
  const outputs = template.findOutputs('*');
  for (const name of ['ApiUrl', 'ModelBucketName', 'PublisherPolicyArn']) assert.ok(outputs[name], name);
});

test('IAM authoriser is opt-in', () => {
  const { template } = synth({ iamAuth: true });
  for (const key of ['POST /predict', 'GET /health']) {
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: key, AuthorizationType: 'AWS_IAM' });
  }
});

test('publisher policy writes models/ only', () => {
  const { template } = synth();
  const policies = template.findResources('AWS::IAM::ManagedPolicy');
  assert.equal(Object.keys(policies).length, 1);
  const doc = (Object.values(policies)[0] as any).Properties.PolicyDocument;
  const put = doc.Statement.find((s: any) => [s.Action].flat().includes('s3:PutObject'));
  assert.ok(JSON.stringify(put.Resource).endsWith('/models/*"]]}'), JSON.stringify(put.Resource));
  const list = doc.Statement.find((s: any) => [s.Action].flat().includes('s3:ListBucket'));
  assert.deepEqual(list.Condition, { StringLike: { 's3:prefix': ['models/*'] } });
});

test('access-log bucket versioned; log groups encrypted with a rotated key', () => {
  const { template } = synth();
  template.hasResourceProperties('AWS::S3::Bucket', {
    VersioningConfiguration: { Status: 'Enabled' },
    OwnershipControls: Match.anyValue(),
  });
  template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  const groups = template.findResources('AWS::Logs::LogGroup');
  assert.equal(Object.keys(groups).length, 2);
  for (const g of Object.values(groups) as any[]) {
    assert.ok(g.Properties.KmsKeyId, 'log group has a KMS key');
  }
});

test('alarms on errors, throttles and p99 duration', () => {
  const { template } = synth();
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Threshold: 1 });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ServerErrors', Namespace: 'Classifier', Threshold: 1 });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Throttles', Threshold: 1 });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Duration', ExtendedStatistic: 'p99' });
  template.hasResourceProperties('AWS::Logs::MetricFilter', {
    FilterPattern: '{ $.fields.message = "model refresh failed*" }',
    MetricTransformations: [Match.objectLike({ MetricName: 'ModelRefreshFailures', MetricNamespace: 'Classifier' })],
  });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ModelRefreshFailures', Threshold: 1 });
});

test('API Gateway 5xx rate and p99 latency are alarmed, from the API\'s own metrics', () => {
  const { template } = synth();
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[];
  const rate = alarms.find((a) => JSON.stringify(a.Properties.Metrics ?? []).includes('5xx'));
  assert.ok(rate, 'a 5xx-rate alarm');
  assert.match(JSON.stringify(rate.Properties.Metrics), /AWS\/ApiGateway/);
  assert.equal(rate.Properties.EvaluationPeriods, 2);
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Namespace: 'AWS/ApiGateway', MetricName: 'Latency', ExtendedStatistic: 'p99', Threshold: 2000,
  });
});

test('every alarm notifies one encrypted topic, on alarm and on OK; e-mail is opt-in', () => {
  const { template } = synth();
  const topics = template.findResources('AWS::SNS::Topic');
  assert.equal(Object.keys(topics).length, 1);
  const [topicId, topic] = Object.entries(topics)[0] as [string, any];
  assert.ok(topic.Properties.KmsMasterKeyId, 'the topic has a customer-managed key');
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[];
  assert.ok(alarms.length >= 7, `${alarms.length} alarms`);
  for (const a of alarms) {
    assert.deepEqual(a.Properties.AlarmActions, [{ Ref: topicId }], a.Properties.AlarmDescription);
    assert.deepEqual(a.Properties.OKActions, [{ Ref: topicId }]);
    assert.match(a.Properties.AlarmDescription, /docs\//, 'the description says where to read what to do');
  }
  const keys = template.findResources('AWS::KMS::Key');
  const topicKey = Object.values(keys).find((k: any) =>
    JSON.stringify(k.Properties.KeyPolicy).includes('cloudwatch.amazonaws.com')) as any;
  assert.ok(topicKey, 'CloudWatch may use the topic key');
  template.resourceCountIs('AWS::SNS::Subscription', 0);
  synth({ alarmEmail: 'ops@example.com' }).template.hasResourceProperties('AWS::SNS::Subscription', {
    Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: Match.anyValue(),
  });
});

test('a dashboard shows traffic, latency, decode and inference time, cold starts and the model version', () => {
  const { template } = synth();
  const dashboards = template.findResources('AWS::CloudWatch::Dashboard');
  assert.equal(Object.keys(dashboards).length, 1);
  const body = JSON.stringify((Object.values(dashboards)[0] as any).Properties.DashboardBody);
  for (const needle of ['DecodeLatency', 'InferenceLatency', 'Abstained', 'ColdStarts', 'ConcurrentExecutions', 'model_version', '5xx', 'Latency']) {
    assert.ok(body.includes(needle), `dashboard lacks ${needle}`);
  }
  template.hasResourceProperties('AWS::Logs::MetricFilter', {
    FilterPattern: '"Init Duration"',
    MetricTransformations: [Match.objectLike({ MetricName: 'ColdStarts', MetricNamespace: 'Classifier' })],
  });
  template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    DefaultRouteSettings: Match.objectLike({ DetailedMetricsEnabled: true }),
  });
});

test('releases: the API invokes the live alias, CodeDeploy shifts it by canary and rolls back on alarms', () => {
  const { template } = synth();
  template.hasResourceProperties('AWS::Lambda::Alias', { Name: 'live', FunctionVersion: Match.anyValue() });
  const integrations = Object.values(template.findResources('AWS::ApiGatewayV2::Integration')) as any[];
  assert.equal(integrations.length, 1);
  assert.match(JSON.stringify(integrations[0].Properties.IntegrationUri), /LiveAlias/, 'the integration targets the alias');
  template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
    DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
    AutoRollbackConfiguration: { Enabled: true, Events: Match.arrayWith(['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM']) },
    AlarmConfiguration: Match.objectLike({ Enabled: true }),
  });
  const group = Object.values(template.findResources('AWS::CodeDeploy::DeploymentGroup'))[0] as any;
  assert.equal(group.Properties.AlarmConfiguration.Alarms.length, 3, 'errors, the function\'s 5xx, latency');
  template.hasResource('AWS::Lambda::Alias', { UpdatePolicy: { CodeDeployLambdaAliasUpdate: Match.anyValue() } });
  synth({ deployment: 'AllAtOnce' }).template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
    DeploymentConfigName: 'CodeDeployDefault.LambdaAllAtOnce',
  });
  assert.throws(() => synth({ deployment: 'Sometimes' }), /deployment=Sometimes is not one of AllAtOnce, Canary10Percent5Minutes/);
});

const jwt = { jwtIssuer: 'https://issuer.example.com', jwtAudience: ['app-1', 'app-2'], allowedOrigins: ['https://app.example.com'] };

test('JWT sign-in protects POST /predict; health, model info and the page stay public', () => {
  const { template } = synth(jwt);
  template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
    AuthorizerType: 'JWT',
    IdentitySource: ['$request.header.Authorization'],
    JwtConfiguration: { Issuer: 'https://issuer.example.com', Audience: ['app-1', 'app-2'] },
  });
  const routes = Object.values(template.findResources('AWS::ApiGatewayV2::Route')) as any[];
  const byKey = Object.fromEntries(routes.map((r) => [r.Properties.RouteKey, r.Properties]));
  assert.equal(byKey['POST /predict'].AuthorizationType, 'JWT');
  for (const key of ['GET /health', 'GET /model', 'GET /']) {
    assert.ok(!byKey[key].AuthorizationType || byKey[key].AuthorizationType === 'NONE', `${key} is public`);
  }
  // CORS names the app's origin, lets browsers send the token and read the ids.
  template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
    CorsConfiguration: Match.objectLike({
      AllowOrigins: ['https://app.example.com'],
      AllowHeaders: Match.arrayWith(['authorization']),
      ExposeHeaders: ['x-model-version', 'x-request-id'],
    }),
  });
});

test('a signed-in API has no wildcard origin unless told', () => {
  const { template } = synth({ jwtIssuer: 'https://issuer.example.com', jwtAudience: ['app-1'] });
  const api = Object.values(template.findResources('AWS::ApiGatewayV2::Api'))[0] as any;
  assert.equal(api.Properties.CorsConfiguration, undefined, 'no CORS without allowedOrigins');
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ ALLOWED_ORIGINS: '' }) },
  });
  synth().template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
    CorsConfiguration: Match.objectLike({ AllowOrigins: ['*'] }),
  });
});

test('cognito=true creates the pool, a public PKCE client and its authorizer', () => {
  const { template } = synth({ cognito: true, callbackUrls: ['https://app.example.com/callback'] });
  template.hasResourceProperties('AWS::Cognito::UserPool', {
    Policies: { PasswordPolicy: Match.objectLike({ MinimumLength: 12 }) },
    MfaConfiguration: 'OPTIONAL',
  });
  const client = (Object.values(template.findResources('AWS::Cognito::UserPoolClient'))[0] as any).Properties;
  assert.equal(client.GenerateSecret, false);
  assert.deepEqual(client.AllowedOAuthFlows, ['code']);
  // The app's URL and the stack's own page (the API URL), where the page's sign-in returns.
  assert.equal(client.CallbackURLs[0], 'https://app.example.com/callback');
  assert.match(JSON.stringify(client.CallbackURLs[1]), /HttpApi/);
  assert.deepEqual(client.LogoutURLs, client.CallbackURLs);
  // The page offers the pool's hosted sign-in as that client.
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        SIGN_IN_URL: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
        SIGN_IN_CLIENT_ID: { Ref: Match.stringLikeRegexp('AppClient') },
      }),
    },
  });
  template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', { AuthorizerType: 'JWT' });
  template.resourceCountIs('AWS::Cognito::UserPoolDomain', 1);
  synth().template.resourceCountIs('AWS::Cognito::UserPool', 0);
});

test('IAM and JWT sign-in exclude each other, and an issuer needs its audience', () => {
  assert.throws(() => synth({ iamAuth: true, ...jwt }), /exclude each other/);
  assert.throws(() => synth({ iamAuth: true, cognito: true }), /exclude each other/);
  assert.throws(() => synth({ jwtIssuer: 'https://issuer.example.com' }), /needs jwtAudience/);
  assert.throws(() => synth({ ...jwt, cognito: true }), /not both/);
});

test('X-Ray tracing is opt-in', () => {
  const fnProps = (t: Template) => (Object.values(t.findResources('AWS::Lambda::Function'))[0] as any).Properties;
  assert.equal(fnProps(synth().template).TracingConfig, undefined);
  assert.deepEqual(fnProps(synth({ tracing: true }).template).TracingConfig, { Mode: 'Active' });
});

test('cdk-nag AwsSolutions: no unacknowledged findings, public default included', () => {
  for (const props of [{}, { iamAuth: true }, { alarmEmail: 'ops@example.com' }, { deployment: 'AllAtOnce' }, jwt, { cognito: true }, { ...jwt, alarmEmail: 'ops@example.com', tracing: true, reservedConcurrency: 5 }]) {
    const { app, pack } = synth(props);
    const result = pack.validateScope(app);
    assert.deepEqual(result.violations.map((v: any) => v.ruleName), [], JSON.stringify(result.violations, null, 1));
  }
});

test('cdk-nag would flag the public routes without their acknowledgement', () => {
  // The public default is acknowledged with a reason, not invisible: a bare public route trips APIG4.
  const app = new App();
  const { Stack } = require('aws-cdk-lib');
  const apigwv2 = require('aws-cdk-lib/aws-apigatewayv2');
  const st = new Stack(app, 'Bare');
  const api = new apigwv2.HttpApi(st, 'Api');
  api.addRoutes({ path: '/x', methods: [apigwv2.HttpMethod.GET], integration: new (require('aws-cdk-lib/aws-apigatewayv2-integrations').HttpUrlIntegration)('I', 'https://example.com') });
  const pack = new AwsSolutionsChecks(app);
  const ids = pack.validateScope(app).violations.map((v: any) => v.ruleName);
  assert.ok(ids.includes('AwsSolutions-APIG4'), ids.join(','));
});

const env = { account: '123456789012', region: 'eu-west-1' };

/** Both stacks of an edge deployment, and cdk-nag over the whole app. */
function synthEdge(props: Partial<Deployment> = {}) {
  const app = new App();
  const { main, edge } = classifierStacks(app, 'Test', { functionCodePath: code, env, edge: true, ...props });
  const pack = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(pack);
  return { app, pack, main: Template.fromStack(main), edge: Template.fromStack(edge!), edgeStack: edge! };
}

test('edge is opt-in: no CloudFront, web ACL, origin secret or custom domain by default', () => {
  const { template } = synth();
  for (const type of ['AWS::CloudFront::Distribution', 'AWS::WAFv2::WebACL', 'AWS::SecretsManager::Secret', 'AWS::ApiGatewayV2::DomainName']) {
    template.resourceCountIs(type, 0);
  }
  const fn = (Object.values(template.findResources('AWS::Lambda::Function'))[0] as any).Properties;
  assert.equal(fn.Environment.Variables.ORIGIN_VERIFY, undefined);
  assert.equal(fn.Environment.Variables.SIGN_IN_URL, undefined);
  assert.equal(fn.KmsKeyArn, undefined);
  assert.match(JSON.stringify(template.findOutputs('ApiUrl').ApiUrl.Value), /HttpApi.*ApiEndpoint/);
});

test('edge: a us-east-1 web ACL with a rate limit per client IP and AWS managed rules, logged without tokens', () => {
  const { edge, edgeStack } = synthEdge({ edgeRateLimit: 500 });
  assert.equal(edgeStack.region, 'us-east-1');
  const acl = (Object.values(edge.findResources('AWS::WAFv2::WebACL'))[0] as any).Properties;
  assert.equal(acl.Scope, 'CLOUDFRONT');
  const rules = Object.fromEntries(acl.Rules.map((r: any) => [r.Name, r]));
  assert.deepEqual(rules.RatePerClientIp.Statement.RateBasedStatement, { Limit: 500, AggregateKeyType: 'IP', EvaluationWindowSec: 300 });
  assert.equal(rules.RatePerClientIp.Action.Block.CustomResponse.ResponseCode, 429);
  const common = rules.AWSManagedRulesCommonRuleSet.Statement.ManagedRuleGroupStatement;
  // Uploads are binary and larger than 8 KB: the body rules count instead of blocking them.
  assert.deepEqual(
    common.RuleActionOverrides.map((o: any) => [o.Name, Object.keys(o.ActionToUse)[0]]),
    [['SizeRestrictions_BODY', 'Count'], ['CrossSiteScripting_BODY', 'Count'], ['GenericLFI_BODY', 'Count'], ['GenericRFI_BODY', 'Count']],
  );
  assert.ok(rules.AWSManagedRulesKnownBadInputsRuleSet && rules.AWSManagedRulesAmazonIpReputationList);
  edge.hasResourceProperties('AWS::WAFv2::LoggingConfiguration', {
    RedactedFields: [{ SingleHeader: { Name: 'authorization' } }],
  });
  edge.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: Match.stringLikeRegexp('^aws-waf-logs-') });
});

test('edge: CloudFront with the web ACL in front; the function refuses callers without its origin secret', () => {
  const { main } = synthEdge();
  const dist = (Object.values(main.findResources('AWS::CloudFront::Distribution'))[0] as any).Properties.DistributionConfig;
  // The ACL's ARN arrives from us-east-1 through an SSM parameter CDK writes and reads.
  assert.match(JSON.stringify(dist.WebACLId), /ExportsReader.*\/cdk\/exports\/.*WebAclArn/);
  const origin = dist.Origins[0];
  assert.match(JSON.stringify(origin.DomainName), /execute-api/);
  assert.deepEqual(origin.CustomOriginConfig.OriginSSLProtocols, ['TLSv1.2']);
  assert.equal(origin.CustomOriginConfig.OriginProtocolPolicy, 'https-only');
  const header = origin.OriginCustomHeaders.find((h: any) => h.HeaderName === 'x-origin-verify');
  const fn = (Object.values(main.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'provided.al2023' } }))[0] as any).Properties;
  // One secret, resolved by CloudFormation for both sides: never in the template itself.
  assert.match(JSON.stringify(header.HeaderValue), /resolve:secretsmanager/);
  assert.deepEqual(fn.Environment.Variables.ORIGIN_VERIFY, header.HeaderValue);
  assert.ok(fn.KmsKeyArn, 'the environment holding the secret is encrypted with the stack key');
  const behavior = dist.DefaultCacheBehavior;
  assert.equal(behavior.ViewerProtocolPolicy, 'redirect-to-https');
  assert.deepEqual(behavior.AllowedMethods.sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);
  // Caching disabled (its managed id) and every viewer header but Host, so Authorization arrives.
  assert.equal(behavior.CachePolicyId, '4135ea2d-6df8-44a3-9df3-4b5a84be39ad');
  assert.equal(behavior.OriginRequestPolicyId, 'b689b0a8-53d0-40ab-baf2-68738e2966ac');
  assert.ok(dist.Logging.Bucket, 'access-logged');
  assert.match(JSON.stringify(main.findOutputs('ApiUrl').ApiUrl.Value), /Edge.*DomainName/);
  assert.ok(main.findOutputs('ExecuteApiUrl').ExecuteApiUrl);
});

test('a custom domain: on API Gateway, or on CloudFront with edge; the certificate must fit', () => {
  const cert = 'arn:aws:acm:eu-west-1:123456789012:certificate/abc';
  const { template } = synth({ env, domainName: 'api.example.com', certificateArn: cert });
  template.hasResourceProperties('AWS::ApiGatewayV2::DomainName', {
    DomainName: 'api.example.com',
    DomainNameConfigurations: [Match.objectLike({ CertificateArn: cert })],
  });
  template.resourceCountIs('AWS::ApiGatewayV2::ApiMapping', 1);
  assert.equal(template.findOutputs('ApiUrl').ApiUrl.Value, 'https://api.example.com');
  assert.ok(template.findOutputs('DomainTarget').DomainTarget);

  const global = 'arn:aws:acm:us-east-1:123456789012:certificate/def';
  const { main } = synthEdge({ domainName: 'img.example.com', certificateArn: global });
  const dist = (Object.values(main.findResources('AWS::CloudFront::Distribution'))[0] as any).Properties.DistributionConfig;
  assert.deepEqual(dist.Aliases, ['img.example.com']);
  assert.equal(dist.ViewerCertificate.AcmCertificateArn, global);
  assert.equal(dist.ViewerCertificate.MinimumProtocolVersion, 'TLSv1.2_2021');
  main.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
  assert.equal(main.findOutputs('ApiUrl').ApiUrl.Value, 'https://img.example.com');

  assert.throws(() => synth({ domainName: 'api.example.com' }), /go together/);
  assert.throws(() => synthEdge({ domainName: 'img.example.com', certificateArn: cert }), /us-east-1/);
  assert.throws(() => classifierStacks(new App(), 'NoEnv', { functionCodePath: code, edge: true }), /account and region/);
});

test('cdk-nag AwsSolutions: no unacknowledged findings with edge, a custom domain and Cognito', () => {
  for (const props of [{}, { cognito: true }, { domainName: 'img.example.com', certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/def', ...jwt }]) {
    const { app, pack } = synthEdge(props);
    const result = pack.validateScope(app);
    assert.deepEqual(result.violations.map((v: any) => v.ruleName), [], JSON.stringify(result.violations, null, 1));
  }
});

test('a candidate model is watched beside the current one: dashboard by variant, alarms on its margins', () => {
  const { template } = synth({ candidateAbstainMargin: 7, candidateErrorMargin: 3 });
  const alarms = template.findResources('AWS::CloudWatch::Alarm');
  const byId = (prefix: string) => Object.entries(alarms).find(([id]) => id.startsWith(prefix))![1] as any;
  const abstain = byId('CandidateAbstainAlarm').Properties;
  assert.equal(abstain.Threshold, 7);
  const expression = abstain.Metrics.find((m: any) => m.Expression).Expression;
  assert.match(expression, /IF\(ci >= 20/, 'judged only on enough candidate images');
  const variants = abstain.Metrics.filter((m: any) => m.MetricStat).map((m: any) => [
    m.MetricStat.Metric.MetricName,
    m.MetricStat.Metric.Dimensions[0].Value,
  ]);
  assert.deepEqual(variants.sort(), [['Abstained', 'candidate'], ['Abstained', 'current'], ['Images', 'candidate'], ['Images', 'current']]);
  const errors = byId('CandidateErrorsAlarm').Properties;
  assert.equal(errors.Threshold, 3);
  assert.ok(errors.AlarmActions.length > 0 && abstain.AlarmActions.length > 0, 'both notify the topic');
  assert.equal(byId('CandidateAbstainAlarm').Properties.AlarmDescription.includes('--percent 0'), true);
  const body = JSON.stringify((Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0] as any).Properties.DashboardBody);
  for (const needle of ['Variant', 'candidate', 'ShadowAgreed', 'Top1Probability']) {
    assert.ok(body.includes(needle), `dashboard lacks ${needle}`);
  }
  const defaults = synth().template.findResources('AWS::CloudWatch::Alarm');
  const threshold = (id: string) => (Object.entries(defaults).find(([k]) => k.startsWith(id))![1] as any).Properties.Threshold;
  assert.deepEqual([threshold('CandidateAbstainAlarm'), threshold('CandidateErrorsAlarm')], [10, 5]);
});

test('captured traffic is opt-in: the function prints it, a log subscription hands it to Firehose, which writes capture/ only', () => {
  const none = synth().template;
  for (const type of ['AWS::KinesisFirehose::DeliveryStream', 'AWS::Logs::SubscriptionFilter']) none.resourceCountIs(type, 0);
  const fnOf = (t: Template) => (Object.values(t.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'provided.al2023' } }))[0] as any).Properties;
  assert.equal(fnOf(none).Environment.Variables.CAPTURE_PERCENT, undefined);

  const { template } = synth({ capturePercent: 5, captureRetentionDays: 14 });
  assert.equal(fnOf(template).Environment.Variables.CAPTURE_PERCENT, '5');
  const stream = (Object.values(template.findResources('AWS::KinesisFirehose::DeliveryStream'))[0] as any).Properties;
  const dest = stream.ExtendedS3DestinationConfiguration;
  assert.equal(dest.Prefix, 'capture/');
  assert.equal(dest.CompressionFormat, 'UNCOMPRESSED', 'records arrive gzipped by CloudWatch Logs');
  assert.equal(stream.DeliveryStreamEncryptionConfigurationInput.KeyType, 'CUSTOMER_MANAGED_CMK');
  template.hasResourceProperties('AWS::Logs::SubscriptionFilter', {
    FilterPattern: '{ $.capture >= 1 }',
    LogGroupName: { Ref: Match.stringLikeRegexp('FunctionLogs') },
  });
  // The delivery role writes capture/ and nothing else in the bucket.
  const policies = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('CaptureDeliveryRole'));
  const s3 = policies.flatMap(([, p]: any) => p.Properties.PolicyDocument.Statement).filter((s: any) => [s.Action].flat().some((a: string) => a.startsWith('s3:')));
  const objects = s3.filter((s: any) => [s.Action].flat().includes('s3:PutObject')).flatMap((s: any) => [s.Resource].flat());
  assert.equal(objects.length, 1);
  assert.match(JSON.stringify(objects[0]), /ModelBucket.*"\/capture\/\*"/);
  assert.ok(!s3.some((s: any) => [s.Action].flat().some((a: string) => a === 's3:DeleteObject' || a === 's3:GetObject')), 'no reading or deleting models');
  const bucket = Object.values(template.findResources('AWS::S3::Bucket', { Properties: { VersioningConfiguration: { Status: 'Enabled' }, LoggingConfiguration: Match.anyValue() } }))[0] as any;
  assert.deepEqual(
    bucket.Properties.LifecycleConfiguration.Rules.map((r: any) => [r.Id, r.Prefix, r.ExpirationInDays]),
    [['CaptureRetention', 'capture/', 14]],
  );
  assert.throws(() => synth({ capturePercent: 101 }), /0 to 100/);
});

test('feedback is opt-in: a POST /feedback route behind the same authorizer, the function may write feedback/ only', () => {
  const none = synth(jwt).template;
  const keys = (t: Template) => (Object.values(t.findResources('AWS::ApiGatewayV2::Route')) as any[]).map((r) => r.Properties.RouteKey);
  assert.ok(!keys(none).includes('POST /feedback'));
  const { template } = synth({ ...jwt, feedback: true, feedbackRetentionDays: 90 });
  const routes = Object.fromEntries((Object.values(template.findResources('AWS::ApiGatewayV2::Route')) as any[]).map((r) => [r.Properties.RouteKey, r.Properties]));
  assert.equal(routes['POST /feedback'].AuthorizationType, 'JWT');
  assert.deepEqual(routes['POST /feedback'].AuthorizerId, routes['POST /predict'].AuthorizerId);
  const fn = (Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'provided.al2023' } }))[0] as any).Properties;
  assert.match(JSON.stringify(fn.Environment.Variables.FEEDBACK_URI), /feedback\//);
  const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p: any) => p.Properties.PolicyDocument.Statement);
  const puts = statements.filter((s: any) => [s.Action].flat().includes('s3:PutObject') && JSON.stringify(s.Resource).includes('feedback'));
  assert.equal(puts.length, 1);
  assert.deepEqual([puts[0].Action].flat(), ['s3:PutObject']);
  const bucket = Object.values(template.findResources('AWS::S3::Bucket', { Properties: { LoggingConfiguration: Match.anyValue() } }))[0] as any;
  assert.deepEqual(bucket.Properties.LifecycleConfiguration.Rules.map((r: any) => [r.Prefix, r.ExpirationInDays]), [['feedback/', 90]]);
});

test('cdk-nag AwsSolutions: no unacknowledged findings with capture and feedback', () => {
  const { app, pack } = synth({ ...jwt, capturePercent: 10, feedback: true });
  const result = pack.validateScope(app);
  assert.deepEqual(result.violations.map((v: any) => v.ruleName), [], JSON.stringify(result.violations, null, 1));
});
