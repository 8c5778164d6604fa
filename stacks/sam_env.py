"""Write the ``env.json`` that ``sam local invoke --env-vars`` needs, from a synthesized stack.

``make sam-env`` runs it after ``cdk synth``. Where each value comes from, and the file's
shape: docs/deploy.md, "Invoking a function locally with SAM".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FUNCTION_TYPE = "AWS::Lambda::Function"


def _functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for the functions that carry Flowcraft's variables."""
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == FUNCTION_TYPE
        and "FLOWCRAFT_QUEUE_URL"
        in resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
    }


def _construct_id(resource: Mapping[str, Any]) -> str | None:
    """``WorkerFunction`` from ``flowcraft/WorkerFunction/Resource`` (written by the CLI)."""
    path = resource.get("Metadata", {}).get("aws:cdk:path", "")
    parts = path.split("/")
    return parts[-2] if len(parts) >= 3 else None


def _from_template(
    value: Any, template: Mapping[str, Any], region: str | None, account: str | None
) -> str | None:
    if not (isinstance(value, dict) and set(value) == {"Ref"}):
        return None
    resource = template.get("Resources", {}).get(value["Ref"], {})
    properties = resource.get("Properties", {})
    kind = resource.get("Type")
    if kind == "AWS::DynamoDB::Table" and isinstance(properties.get("TableName"), str):
        return str(properties["TableName"])
    queue_name = properties.get("QueueName")
    if kind == "AWS::SQS::Queue" and isinstance(queue_name, str) and region and account:
        return f"https://sqs.{region}.amazonaws.com/{account}/{queue_name}"
    return None


def resolve_environment(
    template: Mapping[str, Any],
    outputs: Mapping[str, str] | None = None,
    *,
    region: str | None = None,
    account: str | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The functions' shared variables with real values, and the names left unresolved."""
    functions = _functions(template)
    if not functions:
        raise ValueError("no Flowcraft function in this template")
    variables: dict[str, Any] = next(iter(functions.values()))["Properties"]["Environment"][
        "Variables"
    ]
    output_by_value = {
        json.dumps(output.get("Value"), sort_keys=True): key
        for key, output in template.get("Outputs", {}).items()
    }
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for name, value in variables.items():
        if isinstance(value, str):
            resolved[name] = value
            continue
        output_key = output_by_value.get(json.dumps(value, sort_keys=True))
        if outputs and output_key and output_key in outputs:
            resolved[name] = outputs[output_key]
            continue
        fixed = _from_template(value, template, region, account)
        if fixed is not None:
            resolved[name] = fixed
            continue
        hint = f"stack output {output_key}" if output_key else "the deployed resource"
        resolved[name] = f"<deploy the stack, then read {hint}>"
        missing.append(name)
    return resolved, missing


def env_json(
    template: Mapping[str, Any],
    outputs: Mapping[str, str] | None = None,
    *,
    region: str | None = None,
    account: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """SAM's ``--env-vars`` document: shared ``Parameters`` and one entry per function."""
    variables, missing = resolve_environment(template, outputs, region=region, account=account)
    document: dict[str, Any] = {"Parameters": dict(variables)}
    for logical_id, resource in _functions(template).items():
        document[logical_id] = dict(variables)
        construct_id = _construct_id(resource)
        if construct_id:
            document[construct_id] = dict(variables)
    return document, missing


def deployed_outputs(stack_name: str) -> tuple[dict[str, str], str | None, str | None]:
    """The stack's outputs, region and account, or empties when AWS cannot be reached."""
    try:
        import boto3

        session = boto3.session.Session()
        region = session.region_name
        cloudformation = session.client("cloudformation")
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        account = stack["StackId"].split(":")[4]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return outputs, region, account
    except Exception as error:  # no credentials, no network, no such stack: template only
        print(f"sam-env: no deployed stack {stack_name!r} read ({error})", file=sys.stderr)
        return {}, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="flowcraft", help="stack name (the prefix)")
    parser.add_argument("--template", help="default: cdk.out/<stack>.template.json")
    parser.add_argument("--output", default="env.json")
    parser.add_argument(
        "--no-aws", action="store_true", help="do not read the deployed stack's outputs"
    )
    args = parser.parse_args(argv)
    template_path = Path(args.template or f"cdk.out/{args.stack}.template.json")
    if not template_path.is_file():
        print(f"sam-env: {template_path} not found: run `npx aws-cdk@2 synth`", file=sys.stderr)
        return 2
    template = json.loads(template_path.read_text())
    outputs, region, account = ({}, None, None) if args.no_aws else deployed_outputs(args.stack)
    document, missing = env_json(template, outputs, region=region, account=account)
    Path(args.output).write_text(json.dumps(document, indent=2) + "\n")
    print(f"sam-env: wrote {args.output} for {len(document) - 1} function entries")
    if missing:
        print(
            f"sam-env: {', '.join(missing)} need a deployed stack; edit {args.output} or "
            "deploy and run `make sam-env` again",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
