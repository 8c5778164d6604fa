"""``local.aws_calls`` counts requests of clients created after it is installed."""

from __future__ import annotations

import boto3

from local.aws_calls import AwsCallCounter
from local.emulator import Emulator


def test_counts_by_service_and_operation(aws: Emulator) -> None:
    session = boto3.Session()
    before = session.client("sqs")
    with AwsCallCounter().install(session) as counter:
        sqs = session.client("sqs")
        url = sqs.create_queue(QueueName="counted")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        before.list_queues()  # created before install: not seen
        mark = counter.snapshot()
        session.client("dynamodb").list_tables()
        assert counter.since(mark) == {("dynamodb", "ListTables"): 1}
    assert counter.by_operation() == {
        "sqs.CreateQueue": 1,
        "sqs.SendMessage": 1,
        "dynamodb.ListTables": 1,
    }
    assert counter.by_service() == {"sqs": 2, "dynamodb": 1}
    assert counter.total == 3
    assert "total" in counter.summary()


def test_default_session_covers_boto3_client(aws: Emulator) -> None:
    counter = AwsCallCounter().install()
    try:
        boto3.client("sqs").list_queues()
    finally:
        counter.uninstall()
    boto3.client("sqs").list_queues()
    assert counter.by_operation() == {"sqs.ListQueues": 1}
