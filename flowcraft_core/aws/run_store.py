"""DynamoDbRunStore: the run record in the context table (one item per run, key ``runId``).

A node commits with one ``UpdateItem``: its record, its context writes and its edge decisions,
conditioned on the run still running and the node not committed yet. ``ALL_NEW`` returns the
merged record, so the worker decides joins from the state after every concurrent commit that
came before it, without a second read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from ..distributed.errors import CommitRejected, StateTooLarge
from ..distributed.records import FINAL_STATUSES, PARKED, RUNNING, NodeRecord, RunRecord
from .clients import dynamodb_client
from .serialization import from_item, to_attribute, to_item

#: Finished runs expire (DynamoDB TTL) after this many days.
DEFAULT_RETENTION_DAYS = 30


def record_from_item(item: dict[str, Any]) -> RunRecord:
    data = from_item(item)
    return RunRecord(
        run_id=data["runId"],
        blueprint_id=data["blueprintId"],
        status=data.get("status", RUNNING),
        context=data.get("context") or {},
        nodes={k: NodeRecord.from_item(v) for k, v in (data.get("nodes") or {}).items()},
        decisions={k: bool(v) for k, v in (data.get("decisions") or {}).items()},
        resumes=data.get("resumes") or {},
        timers={k: float(v) for k, v in (data.get("timers") or {}).items()},
        fanouts=data.get("fanouts") or {},
        fired_by=data.get("firedBy") or {},
        retries=data.get("retries") or {},
        created_at=float(data.get("createdAt", 0)),
        updated_at=float(data.get("updatedAt", 0)),
        error=data.get("error"),
        parent=data.get("parent"),
    )


class _Update:
    """Builds an update expression with placeholders for every name and value."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.removes: list[str] = []
        self._n = 0

    def name(self, text: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = text
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{self._n}"
        self._n += 1
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def path(self, *parts: str) -> str:
        return ".".join(self.name(p) for p in parts)

    def set(self, path: str, value: Any, *, if_absent: bool = False) -> None:
        placeholder = self.value(value)
        if if_absent:
            self.sets.append(f"{path} = if_not_exists({path}, {placeholder})")
        else:
            self.sets.append(f"{path} = {placeholder}")

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        return " ".join(parts)


class DynamoDbRunStore:
    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        retention_days: float = DEFAULT_RETENTION_DAYS,
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.retention_seconds = retention_days * 86400

    def create(self, record: RunRecord) -> bool:
        item = {
            "runId": record.run_id,
            "blueprintId": record.blueprint_id,
            "status": record.status,
            "context": record.context,
            "nodes": {},
            "decisions": {},
            "resumes": {},
            "timers": {},
            "fanouts": {},
            "firedBy": {},
            "retries": {},
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
        }
        if record.parent is not None:
            item["parent"] = record.parent
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(runId)",
            )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                return False
            if _too_large(exc):
                raise StateTooLarge(
                    "the initial context is over DynamoDB's 400 KB item limit"
                ) from None
            raise
        return True

    def load(self, run_id: str) -> RunRecord | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"runId": {"S": run_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return record_from_item(item) if item else None

    def _update(self, run_id: str, update: _Update, condition: str) -> RunRecord:
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"runId": {"S": run_id}},
                UpdateExpression=update.expression(),
                ConditionExpression=condition,
                ExpressionAttributeNames=update.names,
                ExpressionAttributeValues=update.values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                item: Any = exc.response.get("Item")
                current = record_from_item(item) if item else None
                if current is None:
                    raise CommitRejected("missing", None) from None
                raise CommitRejected("rejected", current) from None
            if _too_large(exc):
                raise StateTooLarge(
                    f"DynamoDB refused the write: {exc.response['Error'].get('Message')}"
                ) from None
            raise
        return record_from_item(response["Attributes"])

    def commit(
        self,
        run_id: str,
        key: str,
        node: NodeRecord,
        *,
        context_set: dict[str, Any],
        context_delete: Iterable[str],
        now: float,
        fired_by: dict[str, str] | None = None,
        derived: dict[str, NodeRecord] | None = None,
        drop_fanout: bool = False,
        replace_attempt: int | None = None,
    ) -> RunRecord:
        u = _Update()
        node_path = u.path("nodes", key)
        u.set(node_path, node.to_item())  # the node's decisions travel inside its record
        for ckey, value in context_set.items():
            u.set(u.path("context", ckey), value)
        for ckey in context_delete:
            u.removes.append(u.path("context", ckey))
        for target, owner in (fired_by or {}).items():
            u.set(u.path("firedBy", target), owner, if_absent=True)
        for derived_key, record in (derived or {}).items():
            u.set(u.path("nodes", derived_key), record.to_item(), if_absent=True)
        if drop_fanout:
            u.removes.append(u.path("fanouts", key))
        parking = node.status in PARKED
        if not parking:
            u.removes.append(u.path("resumes", key))
            u.removes.append(u.path("retries", key))
        u.set(u.name("updatedAt"), now)
        status = u.name("status")
        running = u.value(RUNNING)
        if replace_attempt is not None:
            condition = (
                f"{status} = {running} AND {node_path}.{u.name('s')} = {u.value('waiting')} "
                f"AND {node_path}.{u.name('n')} = {u.value(replace_attempt)}"
            )
        elif parking:
            condition = f"{status} = {running} AND attribute_not_exists({node_path})"
        else:
            parked_states = f"{u.value('awaiting')}, {u.value('waiting')}"
            condition = (
                f"{status} = {running} AND (attribute_not_exists({node_path}) OR "
                f"{node_path}.{u.name('s')} IN ({parked_states}))"
            )
        try:
            return self._update(run_id, u, condition)
        except CommitRejected as rejected:
            current = rejected.current
            if current is not None:
                existing = current.nodes.get(key)
                if existing is None or current.status != RUNNING:
                    reason = "closed"
                else:
                    reason = "parked" if existing.status in PARKED else "committed"
                raise CommitRejected(reason, current) from None
            raise

    def record_progress(
        self,
        run_id: str,
        *,
        nodes: dict[str, NodeRecord],
        decisions: dict[str, bool],
        now: float,
        timers: dict[str, float] | None = None,
        retries: dict[str, dict[str, float]] | None = None,
    ) -> RunRecord:
        u = _Update()
        for node_key, record in nodes.items():
            u.set(u.path("nodes", node_key), record.to_item(), if_absent=True)
        for dkey, taken in decisions.items():
            u.set(u.path("decisions", dkey), taken)
        for tkey, at in (timers or {}).items():
            u.set(u.path("timers", tkey), at, if_absent=True)
        for rkey, pending in (retries or {}).items():
            u.set(u.path("retries", rkey), pending)
        u.set(u.name("updatedAt"), now)
        condition = f"{u.name('status')} = {u.value(RUNNING)}"
        try:
            return self._update(run_id, u, condition)
        except CommitRejected as rejected:
            raise CommitRejected("closed", rejected.current) from None

    def transition(
        self,
        run_id: str,
        *,
        to: str,
        allowed_from: Iterable[str],
        now: float,
        error: str | None = None,
        resume: tuple[str, dict[str, Any]] | None = None,
        failed_node: tuple[str, NodeRecord] | None = None,
    ) -> RunRecord | None:
        u = _Update()
        status = u.name("status")
        node_condition = ""
        if failed_node is not None:
            failed_path = u.path("nodes", failed_node[0])
            u.set(failed_path, failed_node[1].to_item())
            # A node committed meanwhile (by a concurrent delivery) wins over a failed attempt.
            node_condition = (
                f" AND (attribute_not_exists({failed_path}) OR {failed_path}.{u.name('s')} IN "
                f"({u.value('awaiting')}, {u.value('waiting')}))"
            )
        u.sets.append(f"{status} = {u.value(to)}")
        u.set(u.name("updatedAt"), now)
        if error is not None:
            u.set(u.name("error"), error[:4000])
        if to in FINAL_STATUSES:
            u.set(u.name("ttl"), int(now + self.retention_seconds))
        allowed = [u.value(s) for s in allowed_from]
        condition = f"{status} IN ({', '.join(allowed)})" + node_condition
        if resume is not None:
            key, payload = resume
            node_path = u.path("nodes", key)
            resume_path = u.path("resumes", key)
            u.set(resume_path, payload)
            condition += (
                f" AND {node_path}.{u.name('s')} = {u.value('awaiting')}"
                f" AND attribute_not_exists({resume_path})"
            )
        try:
            return self._update(run_id, u, condition)
        except CommitRejected:
            return None

    def record_fanout(self, run_id: str, key: str, spec: dict[str, Any], now: float) -> RunRecord:
        u = _Update()
        u.set(u.path("fanouts", key), {**spec, "results": {}}, if_absent=True)
        u.set(u.name("updatedAt"), now)
        condition = f"{u.name('status')} = {u.value(RUNNING)}"
        try:
            return self._update(run_id, u, condition)
        except CommitRejected as rejected:
            raise CommitRejected("closed", rejected.current) from None

    def commit_item(self, run_id: str, key: str, index: int, output: Any, now: float) -> RunRecord:
        u = _Update()
        item_path = u.path("fanouts", key, "results", str(index))
        u.set(item_path, output)
        u.removes.append(u.path("retries", f"{key}[{index}]"))
        u.set(u.name("updatedAt"), now)
        node_path = u.path("nodes", key)
        condition = (
            f"{u.name('status')} = {u.value(RUNNING)} AND attribute_not_exists({item_path}) "
            f"AND attribute_not_exists({node_path})"
        )
        try:
            return self._update(run_id, u, condition)
        except CommitRejected as rejected:
            current = rejected.current
            if current is not None and current.status == RUNNING:
                raise CommitRejected("committed", current) from None
            raise CommitRejected("closed", current) from None


def _too_large(exc: ClientError) -> bool:
    """The item-size refusal (not the 4 KB expression limit, which is our bug to avoid)."""
    error = exc.response["Error"]
    message = error.get("Message", "").lower()
    return error["Code"] == "ValidationException" and "item size" in message
