"""The fluent builder produces the same blueprint as JSON and keeps inline implementations."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_core.analysis import lint_blueprint
from flowcraft_core.blueprint import BlueprintError, NodeConfig, WorkflowBlueprint, load_blueprint
from flowcraft_core.builder import FlowBuilder, create_flow

ORDER_JSON: dict[str, Any] = {
    "id": "order",
    "nodes": [
        {
            "id": "validate",
            "uses": "validate",
            "config": {"maxRetries": 2, "retryDelay": 100, "joinStrategy": "all"},
        },
        {"id": "charge", "uses": "payments.charge", "params": {"currency": "EUR"}},
        {"id": "reject", "uses": "reject", "inputs": "validate"},
        {"id": "notify", "uses": "notify", "config": {"joinStrategy": "any"}},
    ],
    "edges": [
        {"source": "validate", "target": "charge", "condition": "result.valid === true"},
        {"source": "validate", "target": "reject", "action": "invalid"},
        {"source": "charge", "target": "notify", "transform": "result.receipt"},
        {"source": "reject", "target": "notify"},
    ],
    "metadata": {"version": "1.0"},
}


def validate(ctx: Any) -> dict[str, Any]:
    return {"output": {"valid": True}}


class Notify:
    """Stands in for a BaseNode subclass: a class is an implementation too."""

    def exec(self, prepared: Any) -> None:
        return None


def order_builder() -> FlowBuilder:
    return (
        create_flow("order")
        .node("validate", validate, max_retries=2, retryDelay=100, join_strategy="all")
        .node("charge", "payments.charge", params={"currency": "EUR"})
        .node("reject", "reject", inputs="validate")
        .node("notify", Notify, config=NodeConfig(join_strategy="any"))
        .edge("validate", "charge", condition="result.valid === true")
        .edge("validate", "reject", action="invalid")
        .edge("charge", "notify", transform="result.receipt")
        .edge("reject", "notify")
        .metadata(version="1.0")
    )


def test_builder_equals_json_blueprint() -> None:
    built = order_builder().to_blueprint()
    assert isinstance(built, WorkflowBlueprint)
    expected = load_blueprint(ORDER_JSON)
    assert built == expected
    assert built.to_json_dict() == expected.to_json_dict()
    assert [node.id for node in built.nodes] == ["validate", "charge", "reject", "notify"]
    # the same fields count as explicitly set, so lint treats both alike
    for mine, theirs in zip(built.nodes, expected.nodes, strict=True):
        assert mine.config.model_fields_set == theirs.config.model_fields_set


def test_callables_are_registered_under_the_node_id() -> None:
    builder = order_builder()
    assert builder.registry == {"validate": validate, "notify": Notify}
    blueprint, registry = builder.build()
    assert registry == builder.registry
    assert blueprint.node("validate").uses == "validate"
    assert blueprint.node("notify").uses == "notify"
    assert blueprint.node("charge").uses == "payments.charge"
    registry["x"] = print
    assert "x" not in builder.registry  # callers get a copy


def test_instances_with_exec_and_explicit_registration() -> None:
    node = Notify()
    builder = create_flow("f").node("a", node, fallback="plan_b").register("plan_b", validate)
    blueprint, registry = builder.build()
    assert registry == {"a": node, "plan_b": validate}
    assert lint_blueprint(blueprint, registry).is_valid


def test_config_spellings_merge_keywords_winning() -> None:
    blueprint = (
        create_flow("f")
        .node("a", "a", config={"maxRetries": 1, "timeout": 50}, max_retries=3)
        .node("b", "b", config=NodeConfig(retry_delay=10), retryDelay=20)
        .to_blueprint()
    )
    assert blueprint.node("a").config.max_retries == 3
    assert blueprint.node("a").config.timeout == 50
    assert blueprint.node("b").config.retry_delay == 20
    assert blueprint.node("b").config.model_fields_set == {"retry_delay"}


def test_builder_output_lints_like_json() -> None:
    blueprint = create_flow("f").node("a", "a").node("b", "b", join_strategy="any").edge("a", "b")
    codes = [issue.code for issue in lint_blueprint(blueprint.to_blueprint()).issues]
    assert codes == ["JOIN_ON_SINGLE_INPUT"]


def test_to_dict_is_flowcraft_json() -> None:
    assert order_builder().to_dict() == ORDER_JSON


def test_bad_config_names_the_node() -> None:
    builder = create_flow("f").node("a", "a").node("risky", "risky", max_retries=-1)
    with pytest.raises(BlueprintError) as caught:
        builder.to_blueprint()
    assert "'risky'" in str(caught.value)
    assert "maxRetries" in str(caught.value)


def test_unknown_edge_end_names_the_edge() -> None:
    builder = create_flow("f").node("a", "a").edge("a", "ghost")
    with pytest.raises(BlueprintError, match="ghost"):
        builder.build()


def test_duplicate_node_names_the_node() -> None:
    with pytest.raises(BlueprintError, match=r"'a'.*duplicate"):
        create_flow("f").node("a", "a").node("a", "b").to_blueprint()


def test_bad_expression_names_the_edge() -> None:
    builder = create_flow("f").node("a", "a").node("b", "b").edge("a", "b", condition="x ===")
    with pytest.raises(BlueprintError, match=r"edges\[0\]"):
        builder.to_blueprint()


def test_bad_uses_names_the_node() -> None:
    with pytest.raises(BlueprintError, match="'weird'"):
        create_flow("f").node("weird", 42)
    with pytest.raises(BlueprintError, match="'weird'"):
        create_flow("f").node("weird", "w", config=[1])  # type: ignore[arg-type]
    with pytest.raises(BlueprintError, match="'k'"):
        create_flow("f").register("k", 42)


def test_empty_flow_is_rejected() -> None:
    with pytest.raises(BlueprintError, match="nodes"):
        create_flow("empty").to_blueprint()


def test_flowcraft_patterns_sleep_wait_loop_batch_and_entry_points() -> None:
    def step(ctx: Any) -> None:
        return None

    builder = (
        create_flow("patterns")
        .node("init", step)
        .node("body", step)
        .loop("again", start_node_id="body", end_node_id="body", condition="count < 3")
        .sleep("nap", duration="5s")
        .wait("ask")
        .batch("work", step, input_key="items", output_key="done", chunk_size=2)
        .edge("init", "again")
        .edge("again", "nap")
        .edge("nap", "ask")
        .edge("ask", "work")
        .set_cycle_entry_point("body")
    )
    data = builder.to_dict()
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["again"]["uses"] == "loop-controller"
    assert nodes["again"]["config"] == {"joinStrategy": "any"}
    assert nodes["nap"]["params"] == {"duration": "5s"}
    assert nodes["ask"]["uses"] == "wait"
    assert nodes["work_scatter"]["params"]["workerUsesKey"] == "work_worker"
    assert nodes["work_scatter"]["inputs"] == "items"
    assert nodes["work_gather"]["params"] == {"gatherNodeId": "work_gather", "outputKey": "done"}
    edges = [(e["source"], e["target"], e.get("action")) for e in data["edges"]]
    assert ("again", "body", "continue") in edges
    assert ("again", "nap", "break") in edges  # an exit edge becomes a break edge
    transforms = {(e["source"], e["target"]): e.get("transform") for e in data["edges"]}
    assert transforms[("again", "body")] == 'context["body"]'
    assert transforms[("again", "nap")] == 'context["body"]'  # exits get the body's output
    assert ("ask", "work_scatter", None) in edges  # edges to a batch go to its scatter node
    assert data["metadata"] == {"cycleEntryPoints": ["body"]}
    assert "work_worker" in builder.registry
    builder.to_blueprint()


def test_graph_representation_folds_loops_and_batches() -> None:
    def step(ctx: Any) -> None:
        return None

    graph = (
        create_flow("ui")
        .node("init", step)
        .node("body", step)
        .loop("again", start_node_id="body", end_node_id="body", condition="n < 3")
        .node("after", step)
        .batch("work", "worker", input_key="items")
        .edge("init", "again")
        .edge("again", "after")
        .edge("after", "work")
        .to_graph_representation()
    )
    ids = [n["id"] for n in graph["nodes"]]
    assert "again" not in ids and "work_scatter" not in ids and "work_gather" not in ids
    batch = next(n for n in graph["nodes"] if n["id"] == "work")
    assert batch["type"] == "batch-worker" and batch["data"]["workerUsesKey"] == "worker"
    loopback = next(e for e in graph["edges"] if e.get("data", {}).get("isLoopback"))
    assert (loopback["source"], loopback["target"]) == ("body", "body")
    pairs = {(e["source"], e["target"]) for e in graph["edges"]}
    assert ("body", "after") in pairs and ("init", "body") in pairs and ("after", "work") in pairs


def test_loop_naming_a_missing_node_is_rejected() -> None:
    with pytest.raises(BlueprintError, match="'ghost'"):
        create_flow("f").node("a", "a").loop(
            "l", start_node_id="ghost", end_node_id="a", condition="true"
        ).to_blueprint()
