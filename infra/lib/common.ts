import { CfnResource, Validations } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/** Acknowledge one cdk-nag finding on a construct, with the reason it is accepted. */
export function ack(scope: Construct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** Tell checkov (run on the synthesized template by the infra tests) why a check does not apply. */
export function checkovSkip(scope: Construct, checks: [id: string, reason: string][]): void {
  const resource = (CfnResource.isCfnResource(scope) ? scope : scope.node.defaultChild) as CfnResource;
  resource.addMetadata('checkov', { skip: checks.map(([id, comment]) => ({ id, comment })) });
}

/** Prefix readers may see and publishers may write. */
export const MODELS_PREFIX = 'models/';
/** Where Firehose delivers captured traffic, and where corrections are stored. */
export const CAPTURE_PREFIX = 'capture/';
export const FEEDBACK_PREFIX = 'feedback/';
/** Where training datasets are uploaded for the managed training job to read. */
export const DATASETS_PREFIX = 'datasets/';

