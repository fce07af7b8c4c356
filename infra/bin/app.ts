#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ClassifierStack } from '../lib/classifier-stack';

const app = new App();
const ctx = (key: string): string | undefined => app.node.tryGetContext(key);
const num = (key: string): number | undefined => (ctx(key) === undefined ? undefined : Number(ctx(key)));

new ClassifierStack(app, ctx('stackName') ?? 'ImageClassifier', {
  functionCodePath: ctx('functionCodePath'),
  allowedOrigins: ctx('allowedOrigins')?.split(','),
  iamAuth: String(ctx('iamAuth')) === 'true',
  reservedConcurrency: num('reservedConcurrency'),
  memorySize: num('memorySize'),
  minProbability: num('minProbability'),
  modelRefreshSeconds: num('modelRefreshSeconds'),
  throttleRate: num('throttleRate'),
  throttleBurst: num('throttleBurst'),
  alarmEmail: ctx('alarmEmail'),
  deployment: ctx('deployment'),
  jwtIssuer: ctx('jwtIssuer'),
  jwtAudience: ctx('jwtAudience')?.split(','),
  cognito: String(ctx('cognito')) === 'true',
  callbackUrls: ctx('callbackUrls')?.split(','),
  cognitoDomainPrefix: ctx('cognitoDomainPrefix'),
  tracing: String(ctx('tracing')) === 'true',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
