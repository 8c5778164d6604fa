"""``local.provision`` builds the schema's resources on the emulator, idempotently."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest

from flowcraft_core.aws.schema import (
    JOB_QUEUE,
    PAYLOAD_BUCKET,
    STATUS_ACTIVE_INDEX,
    STATUS_TABLE,
    TABLES,
    TTL_ATTRIBUTE,
)
from local.__main__ import main
from local.emulator import Emulator
from local.provision import provision

SETTING_KEYS = {
    "FLOWCRAFT_QUEUE_URL",
    "FLOWCRAFT_DLQ_URL",
    "FLOWCRAFT_CONTEXT_TABLE",
    "FLOWCRAFT_STATUS_TABLE",
    "FLOWCRAFT_COORDINATION_TABLE",
    "FLOWCRAFT_PAYLOAD_BUCKET",
}


def test_creates_queue_dlq_and_tables(aws: Emulator) -> None:
    settings = provision("t1")

    assert set(settings) == SETTING_KEYS
    assert settings["FLOWCRAFT_QUEUE_URL"].endswith("/t1-jobs")
    assert settings["FLOWCRAFT_DLQ_URL"].endswith("/t1-jobs-dlq")
    assert {settings[k] for k in SETTING_KEYS if k.endswith("_TABLE")} == {
        spec.name("t1") for spec in TABLES
    }
    assert settings["FLOWCRAFT_PAYLOAD_BUCKET"] == PAYLOAD_BUCKET.name("t1")
    rules = boto3.client("s3").get_bucket_lifecycle_configuration(
        Bucket=settings["FLOWCRAFT_PAYLOAD_BUCKET"]
    )["Rules"]
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules] == [
        (PAYLOAD_BUCKET.key_prefix, PAYLOAD_BUCKET.expiry_days)
    ]

    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=settings["FLOWCRAFT_QUEUE_URL"], AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":t1-jobs-dlq")
    assert int(redrive["maxReceiveCount"]) == JOB_QUEUE.max_receive_count
    assert attributes["VisibilityTimeout"] == str(JOB_QUEUE.visibility_timeout_seconds)
    assert attributes["MessageRetentionPeriod"] == str(JOB_QUEUE.retention_seconds)

    dynamodb = boto3.client("dynamodb")
    for spec in TABLES:
        name = spec.name("t1")
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}
    table = dynamodb.describe_table(TableName=STATUS_TABLE.name("t1"))["Table"]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {index.name for index in STATUS_TABLE.indexes}
    assert STATUS_ACTIVE_INDEX in indexes
    for index in indexes.values():
        assert [k["KeyType"] for k in index["KeySchema"]] == ["HASH", "RANGE"]


def test_second_run_reuses_everything_and_converges_a_drifted_queue(aws: Emulator) -> None:
    first = provision("t2")
    assert provision("t2") == first

    # A queue created with other settings is brought to the spec, not rejected.
    drifted = provision("t2", queue=replace(JOB_QUEUE, max_receive_count=2), tables=())
    assert drifted["FLOWCRAFT_QUEUE_URL"] == first["FLOWCRAFT_QUEUE_URL"]
    redrive = boto3.client("sqs").get_queue_attributes(
        QueueUrl=first["FLOWCRAFT_QUEUE_URL"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]["RedrivePolicy"]
    assert int(json.loads(redrive)["maxReceiveCount"]) == 2


def test_fifo_spec_makes_fifo_queues_with_content_based_dedup(aws: Emulator) -> None:
    settings = provision("t3", queue=replace(JOB_QUEUE, fifo=True), tables=())
    assert settings["FLOWCRAFT_QUEUE_URL"].endswith("/t3-jobs.fifo")
    assert settings["FLOWCRAFT_DLQ_URL"].endswith("/t3-jobs-dlq.fifo")
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=settings["FLOWCRAFT_QUEUE_URL"],
        AttributeNames=["FifoQueue", "ContentBasedDeduplication"],
    )["Attributes"]
    assert attributes == {"FifoQueue": "true", "ContentBasedDeduplication": "true"}


def test_cli_prints_settings_json(aws: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--prefix", "t4"]) == 0
    settings = json.loads(capsys.readouterr().out)
    assert set(settings) == SETTING_KEYS
    assert settings["FLOWCRAFT_STATUS_TABLE"] == "t4-statuses"


def test_cli_refuses_without_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert main(["provision"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "python -m local up" in captured.err
