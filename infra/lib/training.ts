import { CfnOutput, CfnResource, Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ack, checkovSkip, DATASETS_PREFIX, MODELS_PREFIX } from './common';

/** The managed training job (`-c training=true`): what a deployment may choose. */
export interface TrainingProps {
  /** GPU instance types the job may run on (default g5.xlarge: one A10G, 4 vCPUs, 16 GiB). */
  readonly instanceTypes?: string[];
  /** Spot capacity (interrupted jobs are retried); on-demand by default. */
  readonly spot?: boolean;
  /** Most vCPUs running at once, across jobs (default 16: four g5.xlarge). */
  readonly maxvCpus?: number;
  /** The trainer image's tag in the repository (`make push-trainer-image` pushes it). */
  readonly imageTag?: string;
}

/** The job's vCPUs and memory on one g5.xlarge, leaving the ECS agent its share. */
const JOB_VCPUS = 4;
const JOB_MEMORY_GIB = 14;

/**
 * The trainer as an AWS Batch job on EC2 GPU instances, scaled from zero: it reads a
 * dataset under `datasets/` of the model bucket and publishes the run under `models/`,
 * never moving `models/latest.json` (promoting stays `trainer models promote`/`canary`).
 * Batch rather than a SageMaker training job: it runs our own CLI in any container
 * with no SDK inside the image, Spot comes from the compute environment with retries on
 * reclaim, and its API has an offline stand-in (moto) that `make train-cloud` is tested on.
 */
export class TrainingJob extends Construct {
  readonly queue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly repository: ecr.Repository;
  readonly jobRole: iam.Role;

  constructor(scope: Construct, id: string, props: TrainingProps & { bucket: s3.IBucket; logKey: kms.IKey }) {
    super(scope, id);
    const stack = Stack.of(this);
    const instanceTypes = props.instanceTypes ?? ['g5.xlarge'];
    const maxvCpus = props.maxvCpus ?? 16;
    if (maxvCpus < JOB_VCPUS) {
      throw new Error(`trainingMaxvCpus must be at least ${JOB_VCPUS}, the vCPUs of one job`);
    }

    // Public subnets, no NAT gateway: the instances pull the image and write logs over the
    // internet gateway; nothing can reach them (their security group admits nothing), and
    // S3 traffic stays on the gateway endpoint.
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL } },
      restrictDefaultSecurityGroup: true,
    });
    // CDK's function that empties the default security group's rules, run once per deploy.
    const restrictDefault = stack.node.tryFindChild('Custom::VpcRestrictDefaultSGCustomResourceProvider')?.node.tryFindChild('Handler');
    if (restrictDefault && CfnResource.isCfnResource(restrictDefault)) {
      checkovSkip(restrictDefault, [
        ['CKV_AWS_115', "CDK's custom resource that removes the default security group's rules: it runs once per deploy."],
        ['CKV_AWS_116', 'A CloudFormation custom resource: CloudFormation retries and reports its failures.'],
        ['CKV_AWS_117', 'Calls only the EC2 API; nothing in the VPC to reach.'],
      ]);
    }
    for (const subnet of vpc.publicSubnets) {
      checkovSkip(subnet.node.defaultChild as ec2.CfnSubnet, [
        ['CKV_AWS_130', 'Training instances pull their image and write logs through the internet gateway (no NAT); their security group admits no inbound traffic.'],
      ]);
    }
    const securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc,
      description: 'Training instances: no inbound, outbound for ECR, logs and S3',
      allowAllOutbound: true,
    });

    const compute = new batch.ManagedEc2EcsComputeEnvironment(this, 'GpuCompute', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroups: [securityGroup],
      instanceTypes: instanceTypes.map((t) => new ec2.InstanceType(t)),
      useOptimalInstanceClasses: false,
      images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
      minvCpus: 0,
      maxvCpus,
      spot: props.spot ?? false,
      allocationStrategy: props.spot ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
    });
    ack(
      compute,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
      "The ECS agent's own managed policy on Batch's instance role: registering the instance with its cluster.",
    );
    this.queue = new batch.JobQueue(this, 'Queue', {
      computeEnvironments: [{ computeEnvironment: compute, order: 1 }],
      priority: 1,
    });

    this.repository = new ecr.Repository(this, 'Repository', {
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      encryption: ecr.RepositoryEncryption.KMS,
      lifecycleRules: [{ maxImageCount: 10, description: 'Keep the last ten trainer images' }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const jobLogs = new logs.LogGroup(this, 'JobLogs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // Read the dataset prefix, write models/; latest.json is explicitly out of reach, so a
    // cloud run can never change what serves, whatever its command line says.
    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Training job: read datasets/, write models/ (never models/latest.json)',
    });
    this.jobRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [props.bucket.arnForObjects(`${DATASETS_PREFIX}*`)] }));
    this.jobRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [props.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${DATASETS_PREFIX}*`] } },
      }),
    );
    this.jobRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [props.bucket.arnForObjects(`${MODELS_PREFIX}*`)] }));
    this.jobRole.addToPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: ['s3:PutObject', 's3:DeleteObject'],
        resources: [props.bucket.arnForObjects(`${MODELS_PREFIX}latest.json`)],
      }),
    );
    const bucketId = stack.getLogicalId(props.bucket.node.defaultChild as s3.CfnBucket);
    for (const prefix of [DATASETS_PREFIX, MODELS_PREFIX]) {
      ack(
        this.jobRole,
        `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${prefix}*]`,
        `Object keys under ${prefix} are chosen per run (datasets by their owner, models by content hash): the prefix is the narrowest resource.`,
      );
    }

    const executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Training job: pull the trainer image, write its logs',
    });
    this.jobDefinition = new batch.EcsJobDefinition(this, 'JobDefinition', {
      container: new batch.EcsEc2ContainerDefinition(this, 'Container', {
        image: ecs.ContainerImage.fromEcrRepository(this.repository, props.imageTag ?? 'latest'),
        cpu: JOB_VCPUS,
        memory: Size.gibibytes(JOB_MEMORY_GIB),
        gpu: 1,
        jobRole: this.jobRole,
        executionRole,
        readonlyRootFilesystem: false,
        logging: ecs.LogDriver.awsLogs({ streamPrefix: 'train', logGroup: jobLogs }),
        // Batch substitutes Ref:: parameters; `make train-cloud` sets them per job.
        command: [
          'train', '--backend', 'cuda', '--data', 'Ref::data', '--preset', 'Ref::preset',
          '--time-budget', 'Ref::budget', '--out', '/tmp/run', '--publish', 'Ref::publish',
        ],
        environment: { RUST_LOG: 'info' },
      }),
      parameters: {
        data: `s3://${props.bucket.bucketName}/${DATASETS_PREFIX}train.tar.gz`,
        preset: 'default',
        budget: '60m',
        publish: `s3://${props.bucket.bucketName}/`,
      },
      timeout: Duration.hours(12),
      // Spot reclaims and host failures are retried; a failing trainer is not.
      retryAttempts: 3,
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onExitCode: '*' })),
      ],
      propagateTags: true,
    });
    for (const finding of ['Resource::*']) {
      ack(
        executionRole,
        `AwsSolutions-IAM5[${finding}]`,
        'ecr:GetAuthorizationToken takes no resource narrower than * (the pull itself is granted on the repository only).',
      );
    }

    new CfnOutput(stack, 'TrainingJobQueue', { value: this.queue.jobQueueArn, description: 'make train-cloud submits here' });
    new CfnOutput(stack, 'TrainingJobDefinition', { value: this.jobDefinition.jobDefinitionArn });
    new CfnOutput(stack, 'TrainingRepository', { value: this.repository.repositoryUri, description: 'make push-trainer-image pushes the trainer image here' });
    new CfnOutput(stack, 'TrainingLogGroup', { value: jobLogs.logGroupName });
  }
}
