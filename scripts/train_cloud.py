#!/usr/bin/env python3
"""Run the trainer as the managed training job (AWS Batch, `-c training=true`) and follow it.

    make train-cloud DATA=s3://<bucket>/datasets/train.tar.gz [PRESET=default BUDGET=60m]

Submits one job to the stack's queue with the job definition's parameters set (dataset,
preset, time budget, where to publish), prints each status change and the job's log lines
as they arrive, and exits 0 when the job succeeds, 1 when it fails and 2 when it could not
be submitted or followed. The run is published under models/ without moving latest.json:
promote it with `trainer models promote <version> --at s3://<bucket>/`.

Queue, job definition and bucket come from the CDK outputs file (`make deploy` writes
infra/cdk-outputs.json) unless given. AWS_ENDPOINT_URL points every client elsewhere (the
tests use moto on loopback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DONE = {"SUCCEEDED": 0, "FAILED": 1}


def outputs(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    stacks = json.loads(path.read_text())
    # The classifier stack is the one with the training outputs.
    for values in stacks.values():
        if "TrainingJobQueue" in values:
            return values
    return {}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="s3://bucket/datasets/<file>.tar.gz (default: the job definition's)")
    p.add_argument("--preset", default="default", help="trainer preset (default: default)")
    p.add_argument("--budget", default="60m", help="training time budget, e.g. 60m or 2h (default: 60m)")
    p.add_argument("--publish", help="where the run is published (default: s3://<model bucket>/)")
    p.add_argument("--name", default=f"train-{time.strftime('%Y%m%d-%H%M%S')}", help="job name")
    p.add_argument("--outputs", type=Path, default=Path("infra/cdk-outputs.json"), help="CDK outputs file")
    p.add_argument("--queue", help="job queue (default: TrainingJobQueue output)")
    p.add_argument("--job-definition", help="job definition (default: TrainingJobDefinition output)")
    p.add_argument("--poll-seconds", type=float, default=15.0)
    p.add_argument("--timeout-minutes", type=float, default=24 * 60, help="stop following after this long")
    p.add_argument("--no-follow", action="store_true", help="submit and print the job id only")
    args = p.parse_args(argv)
    found = outputs(args.outputs)
    args.queue = args.queue or found.get("TrainingJobQueue")
    args.job_definition = args.job_definition or found.get("TrainingJobDefinition")
    args.log_group = found.get("TrainingLogGroup")
    if args.publish is None and found.get("ModelBucketName"):
        args.publish = f"s3://{found['ModelBucketName']}/"
    if not args.queue or not args.job_definition:
        p.error(f"no job queue or definition: deploy with -c training=true (outputs in {args.outputs}) or give --queue and --job-definition")
    if args.data is not None and not args.data.startswith("s3://"):
        p.error(f"--data {args.data}: the job reads the dataset from S3 (s3://bucket/datasets/...)")
    return args


def submit(batch, args: argparse.Namespace) -> str:
    parameters = {"preset": args.preset, "budget": args.budget}
    if args.data:
        parameters["data"] = args.data
    if args.publish:
        parameters["publish"] = args.publish
    job = batch.submit_job(
        jobName=args.name,
        jobQueue=args.queue,
        jobDefinition=args.job_definition,
        parameters=parameters,
    )
    print(f"submitted {job['jobName']} ({job['jobId']}) with {json.dumps(parameters, sort_keys=True)}", flush=True)
    return job["jobId"]


def follow(batch, logs, job_id: str, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout_minutes * 60
    status, token = None, None
    while time.monotonic() < deadline:
        jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
        if not jobs:
            print(f"job {job_id} is not known to the queue", file=sys.stderr)
            return 2
        job = jobs[0]
        if job["status"] != status:
            status = job["status"]
            reason = job.get("statusReason")
            print(f"{time.strftime('%H:%M:%S')} {status}" + (f": {reason}" if reason else ""), flush=True)
        stream = job.get("container", {}).get("logStreamName")
        if logs and args.log_group and stream:
            token = print_logs(logs, args.log_group, stream, token)
        if status in DONE:
            return DONE[status]
        time.sleep(args.poll_seconds)
    print(f"still {status} after {args.timeout_minutes:g} minutes; the job goes on (job id {job_id})", file=sys.stderr)
    return 2


def print_logs(logs, group: str, stream: str, token: str | None) -> str | None:
    """Print the job's new log lines; the next call starts where this one stopped."""
    try:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = logs.get_log_events(**kwargs)
    except ClientError:
        return token  # the stream appears a little after the container starts
    for event in page["events"]:
        print(f"  | {event['message']}", flush=True)
    return page.get("nextForwardToken", token)


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        batch = boto3.client("batch")
        job_id = submit(batch, args)
        if args.no_follow:
            return 0
        code = follow(batch, boto3.client("logs"), job_id, args)
    except (BotoCoreError, ClientError) as e:
        print(f"train-cloud: {e}", file=sys.stderr)
        return 2
    if code == 0:
        print(f"published under {args.publish or 'the job definition default'}models/; latest.json was not moved "
              "(trainer models list / promote)")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
