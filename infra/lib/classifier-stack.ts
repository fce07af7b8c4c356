import * as path from 'node:path';
import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer, HttpUserPoolAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as logsDestinations from 'aws-cdk-lib/aws-logs-destinations';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { ack, checkovSkip, MODELS_PREFIX, CAPTURE_PREFIX, FEEDBACK_PREFIX } from './common';
import { TrainingJob, TrainingProps } from './training';

/** Everything a deployment may choose; read from CDK context by bin/app.ts. */
export interface ClassifierStackProps extends StackProps {
  /** Folder holding `bootstrap` (`make build-arm64`: cargo lambda build --profile lambda --arm64). */
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
  /** Answer images over the model's ood_threshold with a null label (default: answer and flag them). */
  readonly abstainOutOfDistribution?: boolean;
  /** Seconds between checks of models/latest.json on a warm instance (0 = only at cold start). */
  readonly modelRefreshSeconds?: number;
  readonly throttleRate?: number;
  readonly throttleBurst?: number;
  /** An address subscribed to every alarm (and its return to OK) by e-mail. */
  readonly alarmEmail?: string;
  /** How CodeDeploy shifts traffic to a new function version (a name from RELEASE_CONFIGS). */
  readonly deployment?: string;
  /** Sign-in for app users: a JWT issuer (https URL) whose tokens `POST /predict` requires. */
  readonly jwtIssuer?: string;
  /** The audiences (app client ids) the JWT authorizer accepts, with `jwtIssuer`. */
  readonly jwtAudience?: string[];
  /** Create a Cognito user pool and a public app client (code flow with PKCE) as the issuer. */
  readonly cognito?: boolean;
  /** Where the Cognito hosted sign-in may send users back to (the app's URLs). */
  readonly callbackUrls?: string[];
  /** The hosted sign-in's domain prefix (`<prefix>.auth.<region>.amazoncognito.com`). */
  readonly cognitoDomainPrefix?: string;
  /** X-Ray active tracing of the function. */
  readonly tracing?: boolean;
  /** Percentage points by which a candidate model's abstain rate may exceed the current
   * model's before its alarm fires (`trainer models canary`). */
  readonly candidateAbstainMargin?: number;
  /** How many more 5xx a candidate may answer than the current model in 5 minutes. */
  readonly candidateErrorMargin?: number;
  /** Share of predictions (0-100) whose 32x32 images and answers are kept under `capture/`. */
  readonly capturePercent?: number;
  /** Days captured traffic is kept. */
  readonly captureRetentionDays?: number;
  /** `POST /feedback` stores users' corrections under `feedback/`. */
  readonly feedback?: boolean;
  /** Days corrections are kept. */
  readonly feedbackRetentionDays?: number;
  /** A host name to serve the API under (with `certificateArn`): on API Gateway, or on
   * CloudFront with `edge`. Point its DNS at the `DomainTarget` output. */
  readonly domainName?: string;
  /** ACM certificate for `domainName`: in this stack's region, or us-east-1 with `edge`. */
  readonly certificateArn?: string;
  /** CloudFront with the web ACL of `EdgeStack` in front; the execute-api URL then refuses
   * callers that bypass it. Set by `edgeStacks` together with the ACL. */
  readonly edge?: { readonly webAclArn: string };
  /** The managed training job (AWS Batch on GPU instances) beside the service; off by
   * default. It reads `datasets/` and publishes under `models/`, never moving `latest.json`. */
  readonly training?: TrainingProps;
}

/** The header CloudFront adds for the function to tell its requests from ones that
 * bypass it (the function's `ORIGIN_VERIFY_HEADER`). */
export const ORIGIN_VERIFY_HEADER = 'x-origin-verify';

/** CodeDeploy's Lambda traffic-shifting configurations, by the name `-c deployment=` takes. */
export const RELEASE_CONFIGS: Record<string, codedeploy.ILambdaDeploymentConfig> = {
  AllAtOnce: codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
  Canary10Percent5Minutes: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
  Canary10Percent10Minutes: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_10MINUTES,
  Canary10Percent15Minutes: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_15MINUTES,
  Canary10Percent30Minutes: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_30MINUTES,
  Linear10PercentEvery1Minute: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_1MINUTE,
  Linear10PercentEvery2Minutes: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_2MINUTES,
  Linear10PercentEvery3Minutes: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_3MINUTES,
  Linear10PercentEvery10Minutes: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_10MINUTES,
};

/** Where the function's per-request metric records (embedded metric format) land. */
export const METRICS_NAMESPACE = 'Classifier';

export { ack, checkovSkip, MODELS_PREFIX, CAPTURE_PREFIX, FEEDBACK_PREFIX, DATASETS_PREFIX } from './common';

export class ClassifierStack extends Stack {
  readonly modelBucket: s3.Bucket;
  readonly fn: lambda.Function;
  /** What the API invokes: the released version, moved by CodeDeploy. */
  readonly live: lambda.Alias;
  readonly api: apigwv2.HttpApi;
  readonly alarmTopic: sns.Topic;
  readonly training?: TrainingJob;

  constructor(scope: Construct, id: string, props: ClassifierStackProps = {}) {
    super(scope, id, props);
    const signIn = Boolean(props.jwtIssuer) || Boolean(props.cognito);
    if (props.iamAuth && signIn) {
      throw new Error('iamAuth (SigV4, server to server) and JWT sign-in (jwtIssuer or cognito) exclude each other: choose one');
    }
    if (props.jwtIssuer && props.cognito) {
      throw new Error('give either jwtIssuer with jwtAudience (your own identity provider) or cognito=true, not both');
    }
    if (props.jwtIssuer && !props.jwtAudience?.length) {
      throw new Error('jwtIssuer needs jwtAudience: the app client ids its tokens are issued to');
    }
    if (Boolean(props.domainName) !== Boolean(props.certificateArn)) {
      throw new Error('domainName and certificateArn go together: the certificate must cover the name');
    }
    const certRegion = props.certificateArn?.split(':')[3];
    if (props.edge && certRegion && certRegion !== 'us-east-1') {
      throw new Error(`with edge=true the domain is CloudFront's, whose certificate must be in us-east-1 (got ${certRegion})`);
    }
    // A signed-in API names the browser origins it serves; no wildcard by default.
    const allowedOrigins = props.allowedOrigins ?? (signIn ? [] : ['*']);

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
      description: 'Encrypts the log groups (and, with edge, the origin secret and the function environment)',
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
      tracing: props.tracing ? lambda.Tracing.ACTIVE : undefined,
      // With edge the environment holds the origin secret: encrypted with a key of this account.
      environmentEncryption: props.edge ? logKey : undefined,
      environment: {
        MODEL_URI: `s3://${this.modelBucket.bucketName}/${MODELS_PREFIX}latest.json`,
        ALLOWED_ORIGINS: allowedOrigins.join(','),
        MIN_PROBABILITY: String(props.minProbability ?? 0),
        ABSTAIN_OUT_OF_DISTRIBUTION: String(props.abstainOutOfDistribution ?? false),
        MODEL_REFRESH_SECONDS: String(props.modelRefreshSeconds ?? 60),
        RUST_LOG: 'info',
      },
      description: 'Classifies POSTed images with the trainer-published ONNX model (tract).',
    });
    if (props.tracing) {
      ack(
        role,
        'AwsSolutions-IAM5[Resource::*]',
        'X-Ray trace segments (xray:PutTraceSegments, PutTelemetryRecords) take no resource narrower than *.',
      );
    }
    checkovSkip(this.fn, [
      ['CKV_AWS_116', 'Invoked synchronously by API Gateway: a failed request is answered, there is no event to dead-letter.'],
      ['CKV_AWS_117', 'Reaches only S3 and CloudWatch; a VPC would add NAT or endpoints and cold-start time for nothing to protect.'],
      ['CKV_AWS_115', 'Concurrency is bounded by the API throttle; reservedConcurrency (stack prop) caps it per account when wanted.'],
      ...(props.edge
        ? []
        : [['CKV_AWS_173', 'The environment holds no secrets: a model URI, allowed origins and numeric limits.'] as [string, string]]),
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
      corsPreflight:
        allowedOrigins.length > 0
          ? {
              allowOrigins: allowedOrigins,
              allowMethods: [apigwv2.CorsHttpMethod.GET, apigwv2.CorsHttpMethod.POST, apigwv2.CorsHttpMethod.OPTIONS],
              allowHeaders: ['content-type', 'authorization'],
              exposeHeaders: ['x-model-version', 'x-request-id'],
              maxAge: Duration.minutes(10),
            }
          : undefined,
      defaultAuthorizer: props.iamAuth ? new HttpIamAuthorizer() : undefined,
    });
    const front = this.front(props, logBucket, logKey);
    const signedIn = signIn ? this.signIn(props, front.pageUrl) : undefined;
    // The API invokes the `live` alias; a deploy publishes a version and CodeDeploy moves
    // the alias to it step by step (below), rolling back on the alarms.
    this.live = new lambda.Alias(this, 'LiveAlias', { aliasName: 'live', version: this.fn.currentVersion });
    const integration = new HttpLambdaIntegration('ClassifyIntegration', this.live, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    const routes: [string, apigwv2.HttpMethod][] = [
      ['/predict', apigwv2.HttpMethod.POST],
      ...(props.feedback ? [['/feedback', apigwv2.HttpMethod.POST] as [string, apigwv2.HttpMethod]] : []),
      ['/health', apigwv2.HttpMethod.GET],
      ['/model', apigwv2.HttpMethod.GET],
      ['/', apigwv2.HttpMethod.GET],
    ];
    for (const [routePath, method] of routes) {
      // With sign-in, the data routes need a token; health, model info and the page stay public.
      const authorizer = routePath === '/predict' || routePath === '/feedback' ? signedIn : undefined;
      const created = this.api.addRoutes({ path: routePath, methods: [method], integration, authorizer });
      if (!props.iamAuth && !authorizer) {
        for (const r of created) {
          ack(
            r,
            'AwsSolutions-APIG4',
            signIn
              ? 'Public by design: liveness, model metadata and the page; POST /predict requires a signed-in user (JWT).'
              : 'Public demo API by design (browsers and phones call it without credentials); deploy with -c iamAuth=true, -c jwtIssuer=... or -c cognito=true to require credentials.',
          );
        }
      }
    }
    const stage = this.api.defaultStage!.node.defaultChild as apigwv2.CfnStage;
    stage.defaultRouteSettings = {
      throttlingRateLimit: props.throttleRate ?? 50,
      throttlingBurstLimit: props.throttleBurst ?? 100,
      // Per-route request, error and latency metrics for the dashboard.
      detailedMetricsEnabled: true,
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

    // Every alarm and its return to OK go to one topic; subscribe people or chat to it.
    const topicKey = new kms.Key(this, 'AlarmTopicKey', {
      description: 'Encrypts the alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchPublishesAlarms',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'Image classifier alarms',
      masterKey: topicKey,
      enforceSSL: true,
    });
    if (props.alarmEmail) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    const notify = new cwActions.SnsAction(this.alarmTopic);
    const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string, periods = 1) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: periods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      return a;
    };
    const fiveMinutes = Duration.minutes(5);
    alarm(
      'ErrorsAlarm',
      this.fn.metricErrors({ period: fiveMinutes }),
      1,
      'classify failed (crash, timeout or failed init). Read its log around the alarm; "init failed" names the model and why: publish or promote a good model (docs/operations.md).',
    );
    alarm(
      'ThrottlesAlarm',
      this.fn.metricThrottles({ period: fiveMinutes }),
      1,
      'Lambda throttled classify: raise reservedConcurrency or the account limit, or lower the API throttle (docs/operations.md).',
    );
    alarm(
      'DurationP99Alarm',
      this.fn.metricDuration({ period: fiveMinutes, statistic: 'p99' }),
      3000,
      'classify p99 duration at or above 3 s: check optimise_ms in "model loaded" lines and latency by route; raise memorySize if the handler is slow (docs/operations.md).',
    );
    const serverErrors = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: 'ServerErrors',
      statistic: 'Sum',
      period: fiveMinutes,
    });
    alarm(
      'ServerErrorsAlarm',
      serverErrors,
      1,
      'classify answered 5xx itself (inference_failed): a bug. Find the request_id in the log and report it (docs/operations.md).',
    );
    const api5xxRate = new cloudwatch.MathExpression({
      expression: '100 * errors / MAX([requests, 1])',
      usingMetrics: {
        errors: this.api.metricServerError({ period: fiveMinutes, statistic: 'Sum' }),
        requests: this.api.metricCount({ period: fiveMinutes, statistic: 'Sum' }),
      },
      label: 'API 5xx %',
      period: fiveMinutes,
    });
    alarm(
      'Api5xxRateAlarm',
      api5xxRate,
      1,
      'Over 1 % of API requests got a 5xx from API Gateway for 10 minutes: function errors or timeouts (see ErrorsAlarm), or the integration itself (docs/operations.md).',
      2,
    );
    alarm(
      'ApiLatencyP99Alarm',
      this.api.metricLatency({ period: fiveMinutes, statistic: 'p99' }),
      2000,
      'API p99 latency at or above 2 s for 10 minutes: cold starts or large photos; compare with the function duration (docs/operations.md).',
      2,
    );

    // Safe releases: traffic moves to a new version by the chosen configuration and goes
    // back by itself when the new version's alarms fire during the shift.
    const releaseName = props.deployment ?? 'Canary10Percent5Minutes';
    const releaseConfig = RELEASE_CONFIGS[releaseName];
    if (!releaseConfig) {
      throw new Error(`deployment=${releaseName} is not one of ${Object.keys(RELEASE_CONFIGS).join(', ')}`);
    }
    const oneMinute = Duration.minutes(1);
    const releaseAlarms = [
      alarm(
        'LiveErrorsAlarm',
        this.live.metricErrors({ period: oneMinute }),
        1,
        'The live alias failed (crash, timeout, init): during a release CodeDeploy rolls back; otherwise see ErrorsAlarm (docs/operations.md).',
      ),
      alarm(
        'LiveServerErrorsAlarm',
        serverErrors.with({ period: oneMinute }),
        1,
        'classify answered 5xx during the last minute: during a release CodeDeploy rolls back (docs/deploy.md).',
      ),
      alarm(
        'LiveDurationP99Alarm',
        this.live.metricDuration({ period: oneMinute, statistic: 'p99' }),
        3000,
        'The live alias p99 duration reached 3 s: during a release CodeDeploy rolls back (docs/deploy.md).',
      ),
    ];
    const releases = new codedeploy.LambdaDeploymentGroup(this, 'Releases', {
      alias: this.live,
      deploymentConfig: releaseConfig,
      alarms: releaseAlarms,
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: true },
    });
    for (const finding of ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited']) {
      ack(
        releases.role,
        `AwsSolutions-IAM4[${finding}]`,
        "CodeDeploy's own managed policy for Lambda traffic shifting, limited to the aliases it moves.",
      );
    }

    // A candidate model (trainer models canary) against the current one, from the metric
    // records' Variant dimension: it must not abstain or fail more than the model it may replace.
    const byVariant = (metricName: string, variant: string) =>
      new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, statistic: 'Sum', period: fiveMinutes, dimensionsMap: { Variant: variant } });
    alarm(
      'CandidateAbstainAlarm',
      new cloudwatch.MathExpression({
        // Judged only on 20 or more candidate images in the period, so a few odd photos do not page anyone.
        expression: 'IF(ci >= 20, 100 * ca / MAX([ci, 1]) - 100 * ua / MAX([ui, 1]), 0)',
        usingMetrics: {
          ca: byVariant('Abstained', 'candidate'),
          ci: byVariant('Images', 'candidate'),
          ua: byVariant('Abstained', 'current'),
          ui: byVariant('Images', 'current'),
        },
        label: 'candidate abstain % minus current abstain %',
        period: fiveMinutes,
      }),
      props.candidateAbstainMargin ?? 10,
      'The candidate model abstains ("none of these") more than the current one by the stack\'s margin: end the canary (trainer models canary --percent 0) and look at what it misses (docs/operations.md).',
      2,
    );
    alarm(
      'CandidateErrorsAlarm',
      new cloudwatch.MathExpression({
        expression: 'ce - ue',
        usingMetrics: { ce: byVariant('ServerErrors', 'candidate'), ue: byVariant('ServerErrors', 'current') },
        label: 'candidate 5xx minus current 5xx',
        period: fiveMinutes,
      }),
      props.candidateErrorMargin ?? 5,
      'The candidate model answered more 5xx than the current one by the stack\'s margin: end the canary (trainer models canary --percent 0) and find the request_id in the log (docs/operations.md).',
    );

    this.traffic(props, fnLogs, logKey);

    const refreshFailures = new logs.MetricFilter(this, 'ModelRefreshFailures', {
      logGroup: fnLogs,
      filterPattern: logs.FilterPattern.stringValue('$.fields.message', '=', 'model refresh failed*'),
      metricNamespace: METRICS_NAMESPACE,
      metricName: 'ModelRefreshFailures',
      metricValue: '1',
    });
    alarm(
      'ModelRefreshFailuresAlarm',
      refreshFailures.metric({ period: fiveMinutes, statistic: 'Sum' }),
      1,
      'A published model could not be loaded; the previous one keeps serving. The "model refresh failed" log line names the pointer and the error: re-publish or promote a good model (docs/deploy.md).',
    );
    // Lambda's REPORT line carries "Init Duration" only for a cold start.
    const coldStarts = new logs.MetricFilter(this, 'ColdStarts', {
      logGroup: fnLogs,
      filterPattern: logs.FilterPattern.literal('"Init Duration"'),
      metricNamespace: METRICS_NAMESPACE,
      metricName: 'ColdStarts',
      metricValue: '1',
    });

    this.dashboard(fnLogs, coldStarts.metric({ statistic: 'Sum', period: fiveMinutes }));

    new CfnOutput(this, 'ApiUrl', { value: front.url, description: 'POST images to <ApiUrl>/predict (make url prints it)' });
    if (front.url !== this.api.apiEndpoint) {
      new CfnOutput(this, 'ExecuteApiUrl', {
        value: this.api.apiEndpoint,
        description: props.edge ? 'The API behind CloudFront: refuses callers without the origin header (403)' : 'The API without its custom domain',
      });
    }
    new CfnOutput(this, 'ModelBucketName', { value: this.modelBucket.bucketName });
    if (props.training) {
      this.training = new TrainingJob(this, 'Training', { ...props.training, bucket: this.modelBucket, logKey });
    }
    new CfnOutput(this, 'PublisherPolicyArn', { value: publisher.managedPolicyArn });
    new CfnOutput(this, 'ReleaseDeploymentGroup', {
      value: `${releases.application.applicationName}/${releases.deploymentGroupName}`,
      description: 'CodeDeploy application/group that shifts traffic to new function versions',
    });
  }

  /** One page: traffic, errors, latency (API, function, per step), cold starts,
   * concurrency, the abstain rate and which model serves. */
  private dashboard(fnLogs: logs.ILogGroup, coldStarts: cloudwatch.IMetric): cloudwatch.Dashboard {
    const period = Duration.minutes(5);
    const byRoute = (metricName: string, statistic: string) =>
      ['/predict', '/health', '/model'].map(
        (route) => new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, statistic, period, dimensionsMap: { Route: route }, label: `${route} ${statistic}` }),
      );
    const predict = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, statistic, period, dimensionsMap: { Route: '/predict' }, label: `${metricName} ${statistic}` });
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${this.stackName}-classifier`,
    });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API requests, 4xx, 5xx',
        left: [
          this.api.metricCount({ period, statistic: 'Sum' }),
          this.api.metricClientError({ period, statistic: 'Sum' }),
          this.api.metricServerError({ period, statistic: 'Sum' }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Requests and errors by route (function)',
        left: [...byRoute('Requests', 'Sum'), ...byRoute('ClientErrors', 'Sum'), ...byRoute('ServerErrors', 'Sum')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Latency p50 / p99 (ms): API and function',
        left: [
          this.api.metricLatency({ period, statistic: 'p50' }),
          this.api.metricLatency({ period, statistic: 'p99' }),
          this.fn.metricDuration({ period, statistic: 'p50' }),
          this.fn.metricDuration({ period, statistic: 'p99' }),
        ],
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'POST /predict: decode and inference p50 / p99 (ms)',
        left: [
          predict('DecodeLatency', 'p50'),
          predict('DecodeLatency', 'p99'),
          predict('InferenceLatency', 'p50'),
          predict('InferenceLatency', 'p99'),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Abstain rate (% of images under min_probability)',
        left: [
          new cloudwatch.MathExpression({
            expression: '100 * abstained / MAX([images, 1])',
            usingMetrics: { abstained: predict('Abstained', 'Sum'), images: predict('Images', 'Sum') },
            label: 'abstained %',
            period,
          }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Cold starts, concurrency, throttles',
        left: [
          coldStarts,
          this.fn.metric('ConcurrentExecutions', { period, statistic: 'Maximum' }),
          this.fn.metricThrottles({ period }),
        ],
      }),
    );
    const variant = (metricName: string, v: string, statistic = 'Sum') =>
      new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, statistic, period, dimensionsMap: { Variant: v }, label: `${v} ${metricName}` });
    const rate = (label: string, numerator: string, denominator: string, v: string) =>
      new cloudwatch.MathExpression({
        // Ids are unique within a graph, which shows both variants.
        expression: `100 * ${v}_n / MAX([${v}_d, 1])`,
        usingMetrics: { [`${v}_n`]: variant(numerator, v), [`${v}_d`]: variant(denominator, v) },
        label: `${v} ${label}`,
        period,
      });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Current vs candidate model: images answered',
        left: [variant('Images', 'current'), variant('Images', 'candidate')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Current vs candidate: abstain %, 5xx, mean top-1 probability',
        left: [rate('abstain %', 'Abstained', 'Images', 'current'), rate('abstain %', 'Abstained', 'Images', 'candidate')],
        right: [variant('Top1Probability', 'current', 'Average'), variant('Top1Probability', 'candidate', 'Average')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Shadow: % of compared images where the candidate agrees',
        left: [rate('agreement %', 'ShadowAgreed', 'ShadowCompared', 'current')],
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.LogQueryWidget({
        title: 'Model version serving (requests per version)',
        logGroupNames: [fnLogs.logGroupName],
        queryLines: ['filter ispresent(_aws)', 'stats count(*) as requests by model_version, bin(5m)'],
        width: 24,
      }),
    );
    return dashboard;
  }

  /** The loop back from traffic, both opt-in. Capture: the function prints a record per
   * sampled image; a subscription on its log group hands those lines to Firehose, which
   * writes them under `capture/` as CloudWatch Logs delivers them (gzipped JSON envelopes,
   * see docs/operations.md), with no S3 call in the request. Feedback: the function writes
   * each correction under `feedback/`. Both expire by lifecycle rules. */
  private traffic(props: ClassifierStackProps, fnLogs: logs.LogGroup, logKey: kms.IKey): void {
    const percent = props.capturePercent ?? 0;
    if (percent < 0 || percent > 100 || !Number.isInteger(percent)) {
      throw new Error(`capturePercent must be a whole number from 0 to 100, got ${percent}`);
    }
    if (percent > 0) {
      this.fn.addEnvironment('CAPTURE_PERCENT', String(percent));
      const key = new kms.Key(this, 'CaptureKey', {
        description: 'Encrypts captured traffic in the Firehose stream',
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      const deliveryLogs = new logs.LogGroup(this, 'CaptureDeliveryLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        encryptionKey: logKey,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      // Firehose may write under capture/ and nothing else (the L2 destination grants the
      // whole bucket, models included, so the stream is declared here with its own role).
      const deliveryRole = new iam.Role(this, 'CaptureDeliveryRole', {
        assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com'),
        description: 'Firehose: write captured traffic under capture/ in the model bucket',
      });
      deliveryRole.addToPolicy(
        new iam.PolicyStatement({
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: [this.modelBucket.arnForObjects(`${CAPTURE_PREFIX}*`)],
        }),
      );
      deliveryRole.addToPolicy(
        new iam.PolicyStatement({
          actions: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
          resources: [this.modelBucket.bucketArn],
        }),
      );
      deliveryLogs.grantWrite(deliveryRole);
      key.grantEncryptDecrypt(deliveryRole);
      ack(
        deliveryRole,
        `AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.modelBucket.node.defaultChild as s3.CfnBucket)}.Arn>/capture/*]`,
        'Firehose names the objects it writes (date and stream in the key): capture/ only.',
      );
      for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*']) {
        ack(deliveryRole, `AwsSolutions-IAM5[Action::${action}]`, "grantEncryptDecrypt on the stream's own key, which encrypts nothing else.");
      }
      const deliveryStream = new logs.LogStream(this, 'CaptureDeliveryStreamLog', { logGroup: deliveryLogs, logStreamName: 'S3Delivery' });
      const cfnStream = new firehose.CfnDeliveryStream(this, 'CaptureStream', {
        deliveryStreamType: 'DirectPut',
        deliveryStreamEncryptionConfigurationInput: { keyType: 'CUSTOMER_MANAGED_CMK', keyArn: key.keyArn },
        extendedS3DestinationConfiguration: {
          bucketArn: this.modelBucket.bucketArn,
          roleArn: deliveryRole.roleArn,
          prefix: CAPTURE_PREFIX,
          errorOutputPrefix: `${CAPTURE_PREFIX}errors/!{firehose:error-output-type}/`,
          bufferingHints: { intervalInSeconds: 300, sizeInMBs: 5 },
          // CloudWatch Logs already gzips each record; compressing again would nest gzip.
          compressionFormat: 'UNCOMPRESSED',
          cloudWatchLoggingOptions: { enabled: true, logGroupName: deliveryLogs.logGroupName, logStreamName: deliveryStream.logStreamName },
        },
      });
      cfnStream.node.addDependency(deliveryRole);
      const stream = firehose.DeliveryStream.fromDeliveryStreamAttributes(this, 'CaptureStreamRef', {
        deliveryStreamArn: cfnStream.attrArn,
        deliveryStreamName: cfnStream.ref,
      });
      new logs.SubscriptionFilter(this, 'CaptureSubscription', {
        logGroup: fnLogs,
        destination: new logsDestinations.FirehoseDestination(stream),
        // The capture records only: their top-level `capture` field is the format version.
        filterPattern: logs.FilterPattern.numberValue('$.capture', '>=', 1),
      });
      this.modelBucket.addLifecycleRule({
        id: 'CaptureRetention',
        prefix: CAPTURE_PREFIX,
        expiration: Duration.days(props.captureRetentionDays ?? 30),
        noncurrentVersionExpiration: Duration.days(1),
      });
      new CfnOutput(this, 'CaptureUri', { value: `s3://${this.modelBucket.bucketName}/${CAPTURE_PREFIX}`, description: 'trainer drift --capture / train --capture read here' });
    }
    if (props.feedback) {
      this.fn.addEnvironment('FEEDBACK_URI', `s3://${this.modelBucket.bucketName}/${FEEDBACK_PREFIX}`);
      this.fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['s3:PutObject'],
          resources: [this.modelBucket.arnForObjects(`${FEEDBACK_PREFIX}*`)],
        }),
      );
      ack(
        this.fn.role!,
        `AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.modelBucket.node.defaultChild as s3.CfnBucket)}.Arn>/feedback/*]`,
        'Each correction is a new object named by its day and request id: feedback/ only, write only.',
      );
      this.modelBucket.addLifecycleRule({
        id: 'FeedbackRetention',
        prefix: FEEDBACK_PREFIX,
        expiration: Duration.days(props.feedbackRetentionDays ?? 365),
        noncurrentVersionExpiration: Duration.days(1),
      });
      new CfnOutput(this, 'FeedbackUri', { value: `s3://${this.modelBucket.bucketName}/${FEEDBACK_PREFIX}`, description: 'trainer train --feedback reads here' });
    }
  }

  /** Where clients reach the API: its execute-api URL, a custom domain on API Gateway, or
   * CloudFront with a web ACL (and the custom domain there). With CloudFront, a secret
   * origin header that only CloudFront sends closes the execute-api URL to other callers:
   * an HTTP API has no resource policy to do it. */
  private front(props: ClassifierStackProps, logBucket: s3.IBucket, key: kms.IKey): { url: string; pageUrl: string } {
    const certificate = props.certificateArn ? acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificateArn) : undefined;
    if (!props.edge) {
      if (!props.domainName || !certificate) {
        return { url: this.api.apiEndpoint, pageUrl: `${this.api.apiEndpoint}/` };
      }
      const domain = new apigwv2.DomainName(this, 'Domain', { domainName: props.domainName, certificate });
      new apigwv2.ApiMapping(this, 'DomainMapping', { api: this.api, domainName: domain });
      new CfnOutput(this, 'DomainTarget', { value: domain.regionalDomainName, description: `Point ${props.domainName} (CNAME or alias) here` });
      return { url: `https://${props.domainName}`, pageUrl: `https://${props.domainName}/` };
    }
    const secret = new secretsmanager.Secret(this, 'OriginVerify', {
      description: 'Sent by CloudFront to the API as x-origin-verify; the function refuses requests without it',
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
      encryptionKey: key,
    });
    ack(secret, 'AwsSolutions-SMG4', 'Rotating means redeploying (CloudFront and the function read it at deploy time): `make deploy` after `aws secretsmanager put-secret-value`, see docs/deploy.md.');
    // CloudFormation resolves the reference at deploy time; the template holds only its name.
    const value = secret.secretValue.unsafeUnwrap();
    this.fn.addEnvironment('ORIGIN_VERIFY', value);
    const distribution = new cloudfront.Distribution(this, 'Edge', {
      comment: 'Image classifier API behind a web ACL',
      defaultBehavior: {
        origin: new origins.HttpOrigin(`${this.api.apiId}.execute-api.${this.region}.${this.urlSuffix}`, {
          protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
          originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
          customHeaders: { [ORIGIN_VERIFY_HEADER]: value },
        }),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
        // Every answer depends on its body; with caching off, this policy forwards all
        // viewer headers (Authorization included) but Host, which API Gateway needs its own.
        cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
        originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
      },
      webAclId: props.edge.webAclArn,
      domainNames: props.domainName ? [props.domainName] : undefined,
      certificate,
      minimumProtocolVersion: certificate ? cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 : undefined,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket,
      logFilePrefix: 'cloudfront/',
    });
    ack(distribution, 'AwsSolutions-CFR1', 'A photo classifier has no country it must refuse; add geoRestriction where law requires.');
    if (!props.domainName) {
      ack(distribution, 'AwsSolutions-CFR4', "The default *.cloudfront.net certificate allows TLS 1.0 viewers; set domainName and certificateArn for TLS 1.2 at least.");
      checkovSkip(distribution, [['CKV_AWS_174', 'The default *.cloudfront.net certificate fixes its own TLS floor; set domainName and certificateArn for TLSv1.2_2021.']]);
    } else {
      new CfnOutput(this, 'DomainTarget', { value: distribution.distributionDomainName, description: `Point ${props.domainName} (CNAME or alias) here` });
    }
    const host = props.domainName ?? distribution.distributionDomainName;
    return { url: `https://${host}`, pageUrl: `https://${host}/` };
  }

  /** The JWT authorizer for signed-in app users: an external issuer, or a Cognito user
   * pool with a public app client (authorization code with PKCE, no secret) whose hosted
   * sign-in the page offers. */
  private signIn(props: ClassifierStackProps, pageUrl: string): apigwv2.IHttpRouteAuthorizer {
    if (props.jwtIssuer) {
      return new HttpJwtAuthorizer('JwtAuthorizer', props.jwtIssuer, { jwtAudience: props.jwtAudience ?? [] });
    }
    const pool = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: true,
      signInAliases: { email: true },
      autoVerify: { email: true },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
      },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { sms: false, otp: true },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    ack(pool, 'AwsSolutions-COG2', 'MFA is offered (TOTP) but left to each user: a photo classifier holds no user data worth forcing it for.');
    ack(pool, 'AwsSolutions-COG8', 'Threat protection is the paid Plus feature plan; move the pool to it when the app needs it.');
    const client = pool.addClient('AppClient', {
      generateSecret: false,
      // SRP for app SDKs; the admin flow (IAM credentials only) for scripts and the guide.
      authFlows: { userSrp: true, adminUserPassword: true },
      preventUserExistenceErrors: true,
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
        // The app's own URLs, and the page this stack serves.
        callbackUrls: [...(props.callbackUrls ?? []), pageUrl],
        logoutUrls: [...(props.callbackUrls ?? []), pageUrl],
      },
    });
    const domain = pool.addDomain('SignIn', {
      cognitoDomain: { domainPrefix: props.cognitoDomainPrefix ?? `classifier-${this.account}` },
    });
    this.fn.addEnvironment('SIGN_IN_URL', domain.baseUrl());
    this.fn.addEnvironment('SIGN_IN_CLIENT_ID', client.userPoolClientId);
    new CfnOutput(this, 'UserPoolId', { value: pool.userPoolId });
    new CfnOutput(this, 'AppClientId', { value: client.userPoolClientId });
    new CfnOutput(this, 'SignInUrl', { value: domain.baseUrl(), description: 'Cognito hosted sign-in (authorization code with PKCE)' });
    return new HttpUserPoolAuthorizer('UserPoolAuthorizer', pool, { userPoolClients: [client] });
  }
}
