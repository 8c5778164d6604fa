"""``make sam-env``: the env.json SAM needs, from the synthesized default stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stacks import sam_env
from tests.test_stack import Synth, default  # noqa: F401  (the module-scoped fixture)


def test_env_json_from_deployed_outputs(default: Synth) -> None:  # noqa: F811
    outputs = {
        "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/flowcraft-jobs",
        "PayloadBucketName": "flowcraft-payloadbucket-abc123",
        "ContextTableName": "flowcraft-contexts",
        "StatusTableName": "flowcraft-statuses",
        "CoordinationTableName": "flowcraft-coordination",
    }
    document, missing = sam_env.env_json(default.raw, outputs)
    assert missing == []
    shared = document["Parameters"]
    assert shared["FLOWCRAFT_QUEUE_URL"] == outputs["QueueUrl"]
    assert shared["FLOWCRAFT_PAYLOAD_BUCKET"] == outputs["PayloadBucketName"]
    assert shared["FLOWCRAFT_STATUS_TABLE"] == "flowcraft-statuses"
    assert shared["FLOWCRAFT_RETENTION_DAYS"] == "30"
    assert all(isinstance(value, str) for value in shared.values())
    functions = {default.logical_id(f) for f in default.stack.functions.values()}
    assert set(document) == {"Parameters"} | functions


def test_env_json_without_a_deployed_stack(default: Synth, tmp_path: Path) -> None:  # noqa: F811
    document, missing = sam_env.env_json(default.raw, region="eu-west-1", account="123456789012")
    shared = document["Parameters"]
    assert shared["FLOWCRAFT_CONTEXT_TABLE"] == "flowcraft-contexts"  # fixed in the template
    assert shared["FLOWCRAFT_QUEUE_URL"] == (
        "https://sqs.eu-west-1.amazonaws.com/123456789012/flowcraft-jobs"
    )
    assert missing == ["FLOWCRAFT_PAYLOAD_BUCKET"]  # CloudFormation names the bucket
    assert "PayloadBucketName" in shared["FLOWCRAFT_PAYLOAD_BUCKET"]

    template = tmp_path / "flowcraft.template.json"
    template.write_text(json.dumps(default.raw))
    out = tmp_path / "env.json"
    assert sam_env.main(["--template", str(template), "--output", str(out), "--no-aws"]) == 0
    assert set(json.loads(out.read_text())["Parameters"]) == set(shared)


def test_construct_ids_from_cli_metadata() -> None:
    resource: dict[str, Any] = {"Metadata": {"aws:cdk:path": "flowcraft/WorkerFunction/Resource"}}
    assert sam_env._construct_id(resource) == "WorkerFunction"
    assert sam_env._construct_id({}) is None
