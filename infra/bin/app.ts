#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { classifierStacks } from '../lib/stacks';

const app = new App();
const ctx = (key: string): string | undefined => app.node.tryGetContext(key);
const num = (key: string): number | undefined => (ctx(key) === undefined ? undefined : Number(ctx(key)));
const flag = (key: string): boolean => String(ctx(key)) === 'true';
const account = ctx('account') ?? process.env.CDK_DEFAULT_ACCOUNT;
const region = ctx('region') ?? process.env.CDK_DEFAULT_REGION;

classifierStacks(app, ctx('stackName') ?? 'ImageClassifier', {
  env: account && region ? { account, region } : undefined,
  functionCodePath: ctx('functionCodePath'),
  allowedOrigins: ctx('allowedOrigins')?.split(','),
  iamAuth: flag('iamAuth'),
  reservedConcurrency: num('reservedConcurrency'),
  memorySize: num('memorySize'),
  minProbability: num('minProbability'),
  abstainOutOfDistribution: flag('abstainOutOfDistribution'),
  modelRefreshSeconds: num('modelRefreshSeconds'),
  throttleRate: num('throttleRate'),
  throttleBurst: num('throttleBurst'),
  alarmEmail: ctx('alarmEmail'),
  deployment: ctx('deployment'),
  jwtIssuer: ctx('jwtIssuer'),
  jwtAudience: ctx('jwtAudience')?.split(','),
  cognito: flag('cognito'),
  callbackUrls: ctx('callbackUrls')?.split(','),
  cognitoDomainPrefix: ctx('cognitoDomainPrefix'),
  tracing: flag('tracing'),
  domainName: ctx('domainName'),
  certificateArn: ctx('certificateArn'),
  edge: flag('edge'),
  edgeRateLimit: num('edgeRateLimit'),
  candidateAbstainMargin: num('candidateAbstainMargin'),
  candidateErrorMargin: num('candidateErrorMargin'),
  capturePercent: num('capturePercent'),
  captureRetentionDays: num('captureRetentionDays'),
  feedback: flag('feedback'),
  feedbackRetentionDays: num('feedbackRetentionDays'),
  training: flag('training')
    ? {
        instanceTypes: ctx('trainingInstanceTypes')?.split(','),
        spot: flag('trainingSpot'),
        maxvCpus: num('trainingMaxvCpus'),
        imageTag: ctx('trainingImageTag'),
      }
    : undefined,
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
