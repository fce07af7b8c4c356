import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ClassifierStack, ClassifierStackProps } from '../lib/classifier-stack';

const code = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-'));
fs.writeFileSync(path.join(code, 'bootstrap'), '#!/bin/sh\n');

function synth(props: Partial<ClassifierStackProps> = {}) {
  const app = new App();
  const stack = new ClassifierStack(app, 'Test', { functionCodePath: code, ...props });
  const pack = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(pack);
  return { app, stack, pack, template: Template.fromStack(stack) };
}

const statementsOf = (template: Template, roleFragment: string) =>
  Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p: any) => JSON.stringify(p.Properties.Roles).includes(roleFragment))
    .flatMap((p: any) => p.Properties.PolicyDocument.Statement);

test('the training job is opt-in: no Batch, ECR or VPC by default', () => {
  const { template } = synth();
  for (const type of ['AWS::Batch::JobDefinition', 'AWS::Batch::JobQueue', 'AWS::Batch::ComputeEnvironment', 'AWS::ECR::Repository', 'AWS::EC2::VPC']) {
    template.resourceCountIs(type, 0);
  }
});

test('training=true: a GPU job from our image that trains on the dataset and publishes without promoting', () => {
  const { template } = synth({ training: { imageTag: 'abc1234' } });
  const jd = (Object.values(template.findResources('AWS::Batch::JobDefinition'))[0] as any).Properties;
  const c = jd.ContainerProperties;
  assert.deepEqual(
    Object.fromEntries(c.ResourceRequirements.map((r: any) => [r.Type, r.Value])),
    { GPU: '1', VCPU: '4', MEMORY: '14336' },
  );
  assert.equal(c.Command[0], 'train');
  const arg = (flag: string) => c.Command[c.Command.indexOf(flag) + 1];
  assert.equal(arg('--backend'), 'cuda');
  assert.equal(arg('--publish'), 'Ref::publish');
  assert.equal(arg('--data'), 'Ref::data');
  assert.match(JSON.stringify(jd.Parameters.data), /\/datasets\//);
  assert.ok(!JSON.stringify(jd).includes('latest.json'), 'nothing in the job names the pointer');
  assert.match(JSON.stringify(c.Image), /:abc1234"/);
  assert.equal(c.LogConfiguration.LogDriver, 'awslogs');
  assert.deepEqual(jd.RetryStrategy.EvaluateOnExit.map((e: any) => e.Action), ['RETRY', 'RETRY', 'EXIT']);
  assert.equal(jd.Timeout.AttemptDurationSeconds, 12 * 3600);

  const ce = (Object.values(template.findResources('AWS::Batch::ComputeEnvironment'))[0] as any).Properties;
  assert.equal(ce.ComputeResources.Type, 'EC2');
  assert.equal(ce.ComputeResources.MinvCpus, 0);
  assert.deepEqual(ce.ComputeResources.InstanceTypes, ['g5.xlarge']);
  assert.equal(ce.ComputeResources.Ec2Configuration[0].ImageType, 'ECS_AL2023_NVIDIA');

  template.hasResourceProperties('AWS::ECR::Repository', {
    ImageScanningConfiguration: { ScanOnPush: true },
    ImageTagMutability: 'IMMUTABLE',
    EncryptionConfiguration: { EncryptionType: 'KMS' },
  });
  const logGroup = c.LogConfiguration.Options['awslogs-group'].Ref;
  const groups = template.findResources('AWS::Logs::LogGroup');
  assert.equal(groups[logGroup].Properties.RetentionInDays, 90);
  assert.ok(groups[logGroup].Properties.KmsKeyId, 'job logs encrypted');
});

test("the job's role reads datasets/ and writes models/ only, and may never touch latest.json", () => {
  const { template } = synth({ training: {} });
  const statements = statementsOf(template, 'TrainingJobRole');
  const allows = statements.filter((s: any) => s.Effect === 'Allow');
  const byAction = (a: string) => allows.filter((s: any) => [s.Action].flat().includes(a)).map((s: any) => JSON.stringify(s.Resource));
  assert.deepEqual(allows.flatMap((s: any) => [s.Action].flat()).sort(), ['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
  assert.equal(byAction('s3:GetObject').length, 1);
  assert.match(byAction('s3:GetObject')[0], /\/datasets\/\*"/);
  assert.match(byAction('s3:PutObject')[0], /\/models\/\*"/);
  const deny = statements.filter((s: any) => s.Effect === 'Deny');
  assert.equal(deny.length, 1);
  assert.deepEqual([deny[0].Action].flat().sort(), ['s3:DeleteObject', 's3:PutObject']);
  assert.match(JSON.stringify(deny[0].Resource), /\/models\/latest\.json"/);
  for (const s of allows) assert.ok(!JSON.stringify(s.Resource).includes('"*"'), JSON.stringify(s));
});

test('Spot is an option of the compute environment; the vCPU cap is checked', () => {
  const { template } = synth({ training: { spot: true, instanceTypes: ['g6.xlarge', 'g5.xlarge'], maxvCpus: 32 } });
  const ce = (Object.values(template.findResources('AWS::Batch::ComputeEnvironment'))[0] as any).Properties;
  assert.equal(ce.ComputeResources.Type, 'SPOT');
  assert.equal(ce.ComputeResources.AllocationStrategy, 'SPOT_PRICE_CAPACITY_OPTIMIZED');
  assert.equal(ce.ComputeResources.MaxvCpus, 32);
  assert.deepEqual(ce.ComputeResources.InstanceTypes, ['g6.xlarge', 'g5.xlarge']);
  assert.throws(() => synth({ training: { maxvCpus: 2 } }), /at least 4/);
});

test("CDK's default-security-group function carries checkov's reasons", () => {
  const { template } = synth({ training: {} });
  const handlers = Object.entries(template.findResources('AWS::Lambda::Function')).filter(([id]) => id.startsWith('CustomVpcRestrictDefaultSG'));
  assert.equal(handlers.length, 1);
  const skips = (handlers[0][1] as any).Metadata.checkov.skip.map((s: any) => s.id).sort();
  assert.deepEqual(skips, ['CKV_AWS_115', 'CKV_AWS_116', 'CKV_AWS_117']);
});

test('cdk-nag AwsSolutions: no unacknowledged findings with the training job', () => {
  const { app, pack } = synth({ training: { spot: true } });
  const result = pack.validateScope(app);
  assert.deepEqual(result.violations.map((v: any) => v.ruleName), [], JSON.stringify(result.violations, null, 1));
});
