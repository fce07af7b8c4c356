import * as path from 'node:path';
import { CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Everything a deployment may choose; read from CDK context by bin/app.ts. */
export interface ClassifierStackProps extends StackProps {
  /** Folder holding `bootstrap` (cargo lambda build --release --arm64 output). */
  readonly functionCodePath?: string;
  /** Origins allowed by CORS; `*` for any. */
  readonly allowedOrigins?: string[];
  /** Require SigV4 (IAM) on every route instead of the public demo default. */
  readonly iamAuth?: boolean;
  /** Reserved concurrency of the function; unset leaves the account pool. */
  readonly reservedConcurrency?: number;
  readonly memorySize?: number;
  /** Default top-1 probability under which an answer is "none of these" (0 = off). */
  readonly minProbability?: number;
  /** Seconds between checks of models/latest.json on a warm instance (0 = only at cold start). */
  readonly modelRefreshSeconds?: number;
  readonly throttleRate?: number;
  readonly throttleBurst?: number;
}

/** Acknowledge one cdk-nag finding on a construct, with the reason it is accepted. */
function ack(scope: Construct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** Tell checkov (run on the synthesized template by the infra tests) why a check does not apply. */
function checkovSkip(scope: Construct, checks: [id: string, reason: string][]): void {
  const resource = scope.node.defaultChild as CfnResource;
  resource.addMetadata('checkov', { skip: checks.map(([id, comment]) => ({ id, comment })) });
}

/** Prefix readers may see and publishers may write. */
export const MODELS_PREFIX = 'models/';

export class ClassifierStack extends Stack {
  readonly modelBucket: s3.Bucket;
  readonly fn: lambda.Function;
  readonly api: apigwv2.HttpApi;

  constructor(scope: Construct, id: string, props: ClassifierStackProps = {}) {
    super(scope, id, props);
    const origins = props.allowedOrigins ?? ['*'];

    const logBucket = new s3.Bucket(this, 'AccessLogBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      versioned: true,
      lifecycleRules: [{ expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    checkovSkip(logBucket, [['CKV_AWS_18', 'This is the access-log bucket; logging it into itself would loop.']]);

    // Logs are encrypted with a key of this account, rotated yearly.
    const logKey = new kms.Key(this, 'LogKey', {
      description: 'Encrypts the function and API access log groups',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    logKey.grantEncryptDecrypt(new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`));

    this.modelBucket = new s3.Bucket(this, 'ModelBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: 'model-bucket/',
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const fnLogs = new logs.LogGroup(this, 'FunctionLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      encryptionKey: logKey,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'classify: write its own logs, read published models',
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [fnLogs.logGroupArn],
      }),
    );

    // 1024 MB for CPU, not memory: the bench peaks at 76 MB RSS, but Lambda scales CPU with
    // memory and inference is CPU-bound (0.9 ms per image on one x86 core here).
    this.fn = new lambda.Function(this, 'ClassifyFunction', {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.functionCodePath ?? path.join(__dirname, '../../target/lambda/classify')),
      memorySize: props.memorySize ?? 1024,
      // A 1024x768 JPEG takes 5.6 ms end to end here, so 64 of them well under 1 s; 15 s
      // leaves room for a slower arm64 share and an S3 cold start.
      timeout: Duration.seconds(15),
      role,
      logGroup: fnLogs,
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment: {
        MODEL_URI: `s3://${this.modelBucket.bucketName}/${MODELS_PREFIX}latest.json`,
        ALLOWED_ORIGINS: origins.join(','),
        MIN_PROBABILITY: String(props.minProbability ?? 0),
        MODEL_REFRESH_SECONDS: String(props.modelRefreshSeconds ?? 60),
        RUST_LOG: 'info',
      },
      description: 'Classifies POSTed images with the trainer-published ONNX model (tract).',
    });
    checkovSkip(this.fn, [
      ['CKV_AWS_116', 'Invoked synchronously by API Gateway: a failed request is answered, there is no event to dead-letter.'],
      ['CKV_AWS_117', 'Reaches only S3 and CloudWatch; a VPC would add NAT or endpoints and cold-start time for nothing to protect.'],
      ['CKV_AWS_115', 'Concurrency is bounded by the API throttle; reservedConcurrency (stack prop) caps it per account when wanted.'],
      ['CKV_AWS_173', 'The environment holds no secrets: a model URI, allowed origins and numeric limits.'],
    ]);
    this.modelBucket.grantRead(this.fn, `${MODELS_PREFIX}*`);
    for (const finding of ['Action::s3:GetBucket*', 'Action::s3:GetObject*', 'Action::s3:List*', `Resource::<${this.getLogicalId(this.modelBucket.node.defaultChild as s3.CfnBucket)}.Arn>/models/*`]) {
      ack(
        role,
        `AwsSolutions-IAM5[${finding}]`,
        'grantRead on the models/ prefix only: object keys there are content hashes unknown at deploy time.',
      );
    }

    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      encryptionKey: logKey,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.api = new apigwv2.HttpApi(this, 'HttpApi', {
      description: 'Image classification API',
      corsPreflight: {
        allowOrigins: origins,
        allowMethods: [apigwv2.CorsHttpMethod.GET, apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.OPTIONS],
        allowHeaders: ['content-type', 'authorization'],
        maxAge: Duration.minutes(10),
      },
      defaultAuthorizer: props.iamAuth ? new HttpIamAuthorizer() : undefined,
    });
    const integration = new HttpLambdaIntegration('ClassifyIntegration', this.fn, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    const routes: [string, apigwv2.HttpMethod][] = [
      ['/predict', apigwv2.HttpMethod.POST],
      ['/health', apigwv2.HttpMethod.GET],
      ['/model', apigwv2.HttpMethod.GET],
      ['/', apigwv2.HttpMethod.GET],
    ];
    for (const [routePath, method] of routes) {
      const created = this.api.addRoutes({ path: routePath, methods: [method], integration });
      if (!props.iamAuth) {
        for (const r of created) {
          ack(
            r,
            'AwsSolutions-APIG4',
            'Public demo API by design (browsers and phones call it without credentials); deploy with -c iamAuth=true to require SigV4.',
          );
        }
      }
    }
    const stage = this.api.defaultStage!.node.defaultChild as apigwv2.CfnStage;
    stage.defaultRouteSettings = {
      throttlingRateLimit: props.throttleRate ?? 50,
      throttlingBurstLimit: props.throttleBurst ?? 100,
    };
    stage.accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        method: '$context.httpMethod',
        path: '$context.path',
        status: '$context.status',
        latencyMs: '$context.responseLatency',
        integrationError: '$context.integrationErrorMessage',
      }),
    };

    const publisher = new iam.ManagedPolicy(this, 'ModelPublisherPolicy', {
      description: 'Lets a trainer publish models (trainer publish) under models/ only.',
      statements: [
        new iam.PolicyStatement({
          actions: ['s3:PutObject', 's3:GetObject'],
          resources: [this.modelBucket.arnForObjects(`${MODELS_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          actions: ['s3:ListBucket'],
          resources: [this.modelBucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': [`${MODELS_PREFIX}*`] } },
        }),
      ],
    });
    ack(
      publisher,
      `AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.modelBucket.node.defaultChild as s3.CfnBucket)}.Arn>/models/*]`,
      'Publishing writes content-addressed keys under models/, unknown at deploy time.',
    );

    const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string) =>
      new cloudwatch.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
    alarm('ErrorsAlarm', this.fn.metricErrors({ period: Duration.minutes(5) }), 1, 'classify returned errors');
    alarm('ThrottlesAlarm', this.fn.metricThrottles({ period: Duration.minutes(5) }), 1, 'classify was throttled');
    alarm(
      'DurationP99Alarm',
      this.fn.metricDuration({ period: Duration.minutes(5), statistic: 'p99' }),
      3000,
      'classify p99 duration at or above 3 s',
    );

    // A refresh that fails keeps the old model serving, so only the log says so: count it.
    const refreshFailures = new logs.MetricFilter(this, 'ModelRefreshFailures', {
      logGroup: fnLogs,
      filterPattern: logs.FilterPattern.stringValue('$.fields.message', '=', 'model refresh failed*'),
      metricNamespace: 'Classifier',
      metricName: 'ModelRefreshFailures',
      metricValue: '1',
    });
    alarm(
      'ModelRefreshFailuresAlarm',
      refreshFailures.metric({ period: Duration.minutes(5), statistic: 'Sum' }),
      1,
      'a published model could not be loaded; the previous one keeps serving (see the log line)',
    );

    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint, description: 'POST images to <ApiUrl>/predict' });
    new CfnOutput(this, 'ModelBucketName', { value: this.modelBucket.bucketName });
    new CfnOutput(this, 'PublisherPolicyArn', { value: publisher.managedPolicyArn });
  }
}
