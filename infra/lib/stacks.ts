import { App, CfnResource, Stack, Token } from 'aws-cdk-lib';
import { checkovSkip, ClassifierStack, ClassifierStackProps } from './classifier-stack';
import { EdgeStack } from './edge-stack';

/** A deployment as `cdk deploy -c ...` describes it. */
export interface Deployment extends Omit<ClassifierStackProps, 'edge'> {
  /** CloudFront and a WAF web ACL (in us-east-1, its own stack) in front of the API. */
  readonly edge?: boolean;
  /** With `edge`: requests per client IP per 5 minutes before the web ACL answers 429. */
  readonly edgeRateLimit?: number;
}

/** The classifier stack, and with `edge` the us-east-1 stack of its web ACL. The ACL's
 * ARN crosses regions by CDK's cross-region references (an SSM parameter written by a
 * custom resource), so both stacks need a concrete account and region. */
export function classifierStacks(app: App, id: string, deployment: Deployment): { main: ClassifierStack; edge?: EdgeStack } {
  const { edge: wantEdge, edgeRateLimit, ...props } = deployment;
  if (!wantEdge) {
    return { main: new ClassifierStack(app, id, props) };
  }
  const account = props.env?.account;
  const region = props.env?.region;
  if (!account || !region || Token.isUnresolved(account) || Token.isUnresolved(region)) {
    throw new Error(
      'edge=true needs the account and region to deploy to: the CDK CLI takes them from your AWS credentials and AWS_REGION, or give -c account=... -c region=...',
    );
  }
  const edge = new EdgeStack(app, `${id}-Edge`, {
    env: { account, region: 'us-east-1' },
    crossRegionReferences: true,
    rateLimit: edgeRateLimit,
    description: 'Web ACL in front of the image classifier (CloudFront scope: us-east-1 only)',
  });
  const main = new ClassifierStack(app, id, {
    ...props,
    env: { account, region },
    crossRegionReferences: true,
    edge: { webAclArn: edge.webAclArn },
  });
  acknowledgeCrossRegionProviders(edge);
  acknowledgeCrossRegionProviders(main);
  return { main, edge };
}

/** CDK adds the functions behind cross-region references while it synthesizes, after every
 * constructor has run: the construct tree's validation step is the first point where they
 * exist, so checkov's reasons are attached there, before the template is written. (cdk-nag
 * does not inspect them: they are plain CfnResources, not the typed L1s its rules match.) */
function acknowledgeCrossRegionProviders(stack: Stack): void {
  stack.node.addValidation({
    validate: () => {
      for (const kind of ['Writer', 'Reader']) {
        const provider = stack.node.tryFindChild(`Custom::CrossRegionExport${kind}CustomResourceProvider`);
        if (!provider) continue;
        const handler = provider.node.tryFindChild('Handler');
        if (handler && CfnResource.isCfnResource(handler)) checkovSkip(handler, CROSS_REGION_CHECKOV);
      }
      return [];
    },
  });
}

const CROSS_REGION_CHECKOV: [string, string][] = [
  ['CKV_AWS_115', "CDK's cross-region export function runs once per deploy."],
  ['CKV_AWS_116', 'A CloudFormation custom resource: CloudFormation retries and reports its failures.'],
  ['CKV_AWS_117', 'Reaches only SSM in two regions; no VPC resources to reach.'],
];
