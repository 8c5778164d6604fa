"""analyze_blueprint, lint_blueprint and generate_mermaid."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from flowcraft_core.analysis import (
    LintResult,
    analyze_blueprint,
    generate_mermaid,
    lint_blueprint,
)
from flowcraft_core.blueprint import BlueprintError, load_blueprint


def bp(
    nodes: list[str | dict[str, Any]],
    edges: Sequence[tuple[str, str] | dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A blueprint dict: nodes given by id (uses = id) or in full, edges as pairs or dicts."""
    return {
        "id": "test",
        "nodes": [{"id": n, "uses": n} if isinstance(n, str) else n for n in nodes],
        "edges": [{"source": e[0], "target": e[1]} if isinstance(e, tuple) else e for e in edges],
        **extra,
    }


def codes(result: LintResult) -> list[str]:
    return [issue.code for issue in result.issues]


def issues_with(result: LintResult, code: str) -> list[Any]:
    return [issue for issue in result.issues if issue.code == code]


ORDER_FLOW: dict[str, Any] = {
    "id": "order",
    "nodes": [
        {
            "id": "validate",
            "uses": "validate",
            "config": {"maxRetries": 2, "retryDelay": 100, "joinStrategy": "all"},
        },
        {"id": "charge", "uses": "charge", "params": {"currency": "EUR"}},
        {"id": "reject", "uses": "reject"},
        {"id": "ship", "uses": "ship", "config": {"timeout": 5000, "fallback": "manual"}},
        {"id": "notify", "uses": "notify", "config": {"joinStrategy": "any"}},
    ],
    "edges": [
        {"source": "validate", "target": "charge", "condition": "result.valid === true"},
        {"source": "validate", "target": "reject", "condition": "result.valid !== true"},
        {"source": "charge", "target": "ship", "action": "paid"},
        {"source": "ship", "target": "notify", "transform": "result.trackingId"},
        {"source": "reject", "target": "notify"},
    ],
    "metadata": {"version": "1.0"},
}
ORDER_REGISTRY = {name: object() for name in ("validate", "charge", "reject", "ship", "notify")}
ORDER_REGISTRY["manual"] = object()


# --- analyze_blueprint ---------------------------------------------------------------------


def test_chain() -> None:
    analysis = analyze_blueprint(bp(["a", "b", "c"], [("a", "b"), ("b", "c")]))
    assert analysis.start_node_ids == ["a"]
    assert analysis.terminal_node_ids == ["c"]
    assert analysis.cycles == []
    assert analysis.is_dag is True
    assert (analysis.node_count, analysis.edge_count) == (3, 2)


def test_diamond() -> None:
    analysis = analyze_blueprint(
        bp(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    )
    assert analysis.start_node_ids == ["a"]
    assert analysis.terminal_node_ids == ["d"]
    assert analysis.is_dag


def test_starts_and_terminals_follow_blueprint_order() -> None:
    analysis = analyze_blueprint(
        bp(["z", "y", "m", "b", "a"], [("z", "m"), ("y", "m"), ("m", "a"), ("m", "b")])
    )
    assert analysis.start_node_ids == ["z", "y"]
    assert analysis.terminal_node_ids == ["b", "a"]


def test_single_node_is_start_and_terminal() -> None:
    analysis = analyze_blueprint(bp(["only"]))
    assert analysis.start_node_ids == ["only"]
    assert analysis.terminal_node_ids == ["only"]


def test_cycle_members_are_not_starts_when_a_real_start_exists() -> None:
    analysis = analyze_blueprint(
        bp(["start", "body", "check", "done"], [
            ("start", "check"), ("check", "body"), ("body", "check"), ("check", "done"),
        ])
    )  # fmt: skip
    assert analysis.start_node_ids == ["start"]
    assert analysis.cycles == [["check", "body", "check"]]  # flowcraft's closed-path form
    assert analysis.is_dag is False


def test_closed_cycle_gets_an_entry_only_when_nothing_else_starts() -> None:
    only_cycle = analyze_blueprint(bp(["a", "b"], [("a", "b"), ("b", "a")]))
    assert only_cycle.start_node_ids == ["a"]
    flowcraft_hint = analyze_blueprint(
        bp(["a", "b"], [("a", "b"), ("b", "a")], metadata={"cycleEntryPoints": ["b"]})
    )
    assert flowcraft_hint.start_node_ids == ["b"]
    beside_a_start = analyze_blueprint(
        bp(["s", "x", "c1", "c2"], [("s", "x"), ("c1", "c2"), ("c2", "c1")])
    )
    assert beside_a_start.start_node_ids == ["s"]


def test_cycle_fed_by_another_cycle_gets_no_second_entry() -> None:
    analysis = analyze_blueprint(
        bp(["a", "b", "c", "d"], [("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "c")])
    )
    assert analysis.start_node_ids == ["a"]
    assert analysis.cycles == [["a", "b", "a"], ["c", "d", "c"]]


def test_self_loop_is_a_cycle() -> None:
    analysis = analyze_blueprint(bp(["a", "b"], [("a", "b"), ("b", "b")]))
    assert analysis.cycles == [["b", "b"]]
    assert analysis.terminal_node_ids == []


def test_analysis_to_dict_is_camel_case() -> None:
    assert analyze_blueprint(bp(["a", "b"], [("a", "b")])).to_dict() == {
        "startNodeIds": ["a"],
        "terminalNodeIds": ["b"],
        "cycles": [],
        "isDag": True,
        "nodeCount": 2,
        "edgeCount": 1,
    }


def test_analysis_accepts_model_dict_and_json() -> None:
    model = load_blueprint(ORDER_FLOW)
    assert analyze_blueprint(model) == analyze_blueprint(ORDER_FLOW)
    assert analyze_blueprint(json.dumps(ORDER_FLOW)) == analyze_blueprint(ORDER_FLOW)


def test_analysis_of_broken_blueprint_raises_blueprint_error() -> None:
    with pytest.raises(BlueprintError, match="nowhere"):
        analyze_blueprint(bp(["a"], [("a", "nowhere")]))


def test_flowcraft_json_example() -> None:
    analysis = analyze_blueprint(ORDER_FLOW)
    assert analysis.start_node_ids == ["validate"]
    assert analysis.terminal_node_ids == ["notify"]
    assert analysis.is_dag
    assert (analysis.node_count, analysis.edge_count) == (5, 5)
    result = lint_blueprint(ORDER_FLOW, ORDER_REGISTRY)
    assert result.is_valid, result.issues
    assert result.issues == []


def test_ten_thousand_node_chain() -> None:
    """No recursion anywhere: a deep chain is analysed and linted (time is measured in bench/)."""
    count = 10_000
    chain = bp([f"n{i}" for i in range(count)], [(f"n{i}", f"n{i + 1}") for i in range(count - 1)])
    analysis = analyze_blueprint(chain)
    assert analysis.start_node_ids == ["n0"]
    assert analysis.terminal_node_ids == [f"n{count - 1}"]
    assert analysis.is_dag
    assert lint_blueprint(chain).issues == []
    chain["edges"].append({"source": f"n{count - 1}", "target": "n1"})
    looped = lint_blueprint(chain)
    assert codes(looped) == ["CYCLE_RUNS_ONCE"]
    assert analyze_blueprint(chain).cycles[0][:2] == ["n1", "n2"]
    assert analyze_blueprint(chain).cycles[0][-1] == "n1"


# --- lint_blueprint: each code fires on a minimal bad blueprint ----------------------------


def test_good_blueprint_has_no_issues() -> None:
    good = bp(["a", "b"], [("a", "b")])
    result = lint_blueprint(good, {"a": print, "b": print})
    assert result.is_valid
    assert result.issues == []
    assert result.to_dict() == {"isValid": True, "issues": []}


def test_unknown_edge_target_in_raw_dict_is_an_issue_not_an_exception() -> None:
    result = lint_blueprint(bp(["a"], [("a", "ghost")]))
    assert not result.is_valid
    (issue,) = issues_with(result, "INVALID_EDGE_TARGET")
    assert issue.severity == "error"
    assert issue.edge_index == 0
    assert "ghost" in issue.message
    assert "INVALID_EDGE_SOURCE" not in codes(result)


def test_unknown_edge_source() -> None:
    result = lint_blueprint(bp(["a"], [("ghost", "a")]))
    (issue,) = issues_with(result, "INVALID_EDGE_SOURCE")
    assert "ghost" in issue.message
    assert issue.edge_index == 0


def test_duplicate_node_id() -> None:
    result = lint_blueprint(bp(["a", "a"]))
    (issue,) = issues_with(result, "DUPLICATE_NODE_ID")
    assert issue.node_id == "a"
    assert "'a'" in issue.message
    assert not result.is_valid


def test_unreachable_node() -> None:
    bad = bp(["s", "x", "c1", "c2"], [("s", "x"), ("c1", "c2"), ("c2", "c1")])
    result = lint_blueprint(bad)
    assert [i.node_id for i in issues_with(result, "UNREACHABLE_NODE")] == ["c1", "c2"]
    assert "UNREACHABLE_NODE" not in codes(lint_blueprint(bp(["s", "x"], [("s", "x")])))


def test_orphan_node_is_a_warning() -> None:
    result = lint_blueprint(bp(["a", "b", "lonely"], [("a", "b")]))
    (issue,) = issues_with(result, "ORPHAN_NODE")
    assert issue.node_id == "lonely"
    assert issue.severity == "warning"
    assert result.is_valid
    assert result.warnings == [issue]
    assert lint_blueprint(bp(["alone"])).issues == []  # a one-node blueprint is fine


def test_missing_implementation_only_with_a_registry() -> None:
    blueprint = bp(["a", {"id": "pause", "uses": "sleep"}], [("a", "pause")])
    assert "MISSING_IMPLEMENTATION" not in codes(lint_blueprint(blueprint))
    result = lint_blueprint(blueprint, {})
    (issue,) = issues_with(result, "MISSING_IMPLEMENTATION")  # built-in 'sleep' is fine
    assert issue.node_id == "a"
    assert "'a'" in issue.message
    assert lint_blueprint(blueprint, {"a": print}).is_valid


def test_missing_fallback_only_with_a_registry() -> None:
    node = {"id": "a", "uses": "a", "config": {"fallback": "plan_b"}}
    assert lint_blueprint(bp([node])).is_valid
    result = lint_blueprint(bp([node]), {"a": print})
    (issue,) = issues_with(result, "MISSING_FALLBACK")
    assert issue.node_id == "a"
    assert "plan_b" in issue.message
    assert lint_blueprint(bp([node]), {"a": print, "plan_b": print}).is_valid


def test_invalid_expression_in_raw_dict() -> None:
    bad = bp(["a", "b"], [{"source": "a", "target": "b", "condition": "result.valid ==="}])
    result = lint_blueprint(bad)
    (issue,) = issues_with(result, "INVALID_EXPRESSION")
    assert issue.edge_index == 0
    assert "result.valid ===" in issue.message
    assert "does not compile: " in issue.message  # followed by the evaluator's own words
    assert len(issue.message.split("does not compile: ", 1)[1]) > 0


def test_invalid_transform_expression() -> None:
    bad = bp(["a", "b"], [{"source": "a", "target": "b", "transform": "(("}])
    (issue,) = issues_with(lint_blueprint(bad), "INVALID_EXPRESSION")
    assert "transform" in issue.message


def test_valid_expressions_pass() -> None:
    good = bp(
        ["a", "b"],
        [{"source": "a", "target": "b", "condition": "result.n > 1 && !result.skip"}],
    )
    assert "INVALID_EXPRESSION" not in codes(lint_blueprint(good))


def test_join_on_single_input_only_when_set_explicitly() -> None:
    explicit = {"id": "b", "uses": "b", "config": {"joinStrategy": "any"}}
    result = lint_blueprint(bp(["a", explicit], [("a", "b")]))
    (issue,) = issues_with(result, "JOIN_ON_SINGLE_INPUT")
    assert issue.node_id == "b"
    assert issue.severity == "warning"
    default_all = {"id": "b", "uses": "b", "config": {"maxRetries": 1}}
    assert lint_blueprint(bp(["a", default_all], [("a", "b")])).issues == []
    two_inputs = lint_blueprint(bp(["a", "c", explicit], [("a", "b"), ("c", "b")]))
    assert "JOIN_ON_SINGLE_INPUT" not in codes(two_inputs)


def test_unbounded_cycle_vs_loop_node_vs_max_iterations() -> None:
    edges = [("start", "check"), ("check", "body"), ("body", "check"), ("check", "done")]
    once = lint_blueprint(bp(["start", "check", "body", "done"], edges))
    (issue,) = issues_with(once, "CYCLE_RUNS_ONCE")
    assert issue.severity == "warning" and once.is_valid
    assert "'check' -> 'body' -> 'check'" in issue.message
    closing = {"source": "body", "target": "check", "condition": "context.more"}
    guarded = [*edges[:2], closing, edges[3]]
    unbounded = lint_blueprint(bp(["start", "check", "body", "done"], guarded))
    (issue,) = issues_with(unbounded, "UNBOUNDED_CYCLE")
    assert issue.severity == "warning"
    controller = {"id": "check", "uses": "loop-controller", "params": {"condition": "true"}}
    assert lint_blueprint(bp(["start", controller, "body", "done"], edges)).issues == []
    loop_node = {"id": "check", "uses": "loop"}
    assert lint_blueprint(bp(["start", loop_node, "body", "done"], edges)).issues == []
    capped = {"id": "body", "uses": "body", "config": {"maxIterations": 5}}
    assert lint_blueprint(bp(["start", "check", capped, "done"], edges)).issues == []


def test_no_start_node() -> None:
    result = lint_blueprint(bp([{"id": "a", "uses": "loop"}, "b"], [("a", "b"), ("b", "a")]))
    assert codes(result) == ["NO_START_NODE"]
    assert result.is_valid  # entered at its first node (or a cycleEntryPoints node) at run time


def test_invalid_node_field_in_raw_dict_keeps_linting_the_rest() -> None:
    bad = bp(
        [{"id": "a", "uses": "a", "config": {"maxRetries": -1}}, "b", "lonely"],
        [("a", "b"), ("b", "ghost")],
    )
    result = lint_blueprint(bad)
    (invalid,) = issues_with(result, "INVALID_NODE")
    assert invalid.node_id == "a"
    assert "maxRetries" in invalid.message and "nodes[0]" in invalid.message
    assert issues_with(result, "INVALID_EDGE_TARGET")[0].edge_index == 1
    assert [i.node_id for i in issues_with(result, "ORPHAN_NODE")] == ["lonely"]
    # 'a' failed validation but still exists: the edge from it is not reported as dangling
    assert "INVALID_EDGE_SOURCE" not in codes(result)


def test_structural_problems_are_issues() -> None:
    assert codes(lint_blueprint({"id": "x", "nodes": []})) == []  # empty is valid
    assert "INVALID_BLUEPRINT" in codes(lint_blueprint({"nodes": [{"id": "a", "uses": "a"}]}))
    assert codes(lint_blueprint("{not json")) == ["INVALID_BLUEPRINT"]
    assert codes(lint_blueprint([1, 2])) == ["INVALID_BLUEPRINT"]  # type: ignore[arg-type]
    bad_edge = lint_blueprint(bp(["a"], ["not an edge"]))  # type: ignore[list-item]
    assert codes(bad_edge) == ["INVALID_EDGE"]


def test_lint_accepts_json_text_and_model() -> None:
    assert lint_blueprint(json.dumps(ORDER_FLOW), ORDER_REGISTRY).is_valid
    assert lint_blueprint(load_blueprint(ORDER_FLOW), ORDER_REGISTRY).is_valid


def test_issue_to_dict() -> None:
    result = lint_blueprint(bp(["a"], [("a", "ghost")]))
    (issue,) = result.to_dict()["issues"]
    assert issue["code"] == "INVALID_EDGE_TARGET"
    assert issue["edgeIndex"] == 0
    assert "nodeId" not in issue
    assert result.to_dict()["isValid"] is False


# --- generate_mermaid ----------------------------------------------------------------------


def test_mermaid_has_every_node_and_edge_label() -> None:
    text = generate_mermaid(ORDER_FLOW)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    for index, node in enumerate(ORDER_FLOW["nodes"]):
        assert f'n{index}["{node["id"]}<br/>uses: {node["uses"]}"]' in text
    assert 'n0 -- "condition: result.valid === true" --> n1' in text
    assert 'n0 -- "condition: result.valid !== true" --> n2' in text
    assert 'n1 -- "action: paid" --> n3' in text
    assert 'n3 -- "transform: result.trackingId" --> n4' in text
    assert "    n2 --> n4" in lines
    assert "classDef" not in text


def test_mermaid_statuses() -> None:
    statuses = {
        "validate": "completed",
        "charge": "failed",
        "reject": "skipped",
        "ship#1": "running",
        "ship": "completed",
        "ship#2": "awaiting",
    }
    text = generate_mermaid(ORDER_FLOW, statuses)
    for status in ("completed", "failed", "skipped", "running", "awaiting", "cancelled", "pending"):
        assert f"classDef {status} " in text
    assert "stroke-dasharray" in text.split("classDef skipped", 1)[1].splitlines()[0]
    lines = text.splitlines()
    assert "    class n0 completed" in lines
    assert "    class n1 failed" in lines
    assert "    class n2 skipped" in lines
    assert "    class n3 awaiting" in lines  # latest iteration wins
    assert "    class n4 pending" in lines  # nothing recorded yet


def test_mermaid_escapes_labels_and_sanitises_ids() -> None:
    tricky = bp(
        [
            {"id": 'say "hi" now', "uses": "a<b>&c#d"},
            {"id": "end", "uses": "x"},
        ],
        [{"source": 'say "hi" now', "target": "end", "action": 'go "fast"'}],
    )
    text = generate_mermaid(tricky, direction="LR")
    assert text.startswith("flowchart LR\n")
    assert 'n0["say #quot;hi#quot; now<br/>uses: a#lt;b#gt;#amp;c#35;d"]' in text
    assert 'n1["end<br/>uses: x"]' in text
    assert 'n0 -- "action: go #quot;fast#quot;" --> n1' in text
    for line in text.splitlines()[1:]:
        inside_quotes = line.split('"')[1::2]
        assert all('"' not in part for part in inside_quotes)
        assert line.count('"') % 2 == 0


def test_mermaid_rejects_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        generate_mermaid(bp(["a"]), direction="sideways")


def test_cycles_in_flowcraft_form() -> None:
    # analysis.test.ts
    assert analyze_blueprint(bp(["A", "B"], [("A", "B"), ("B", "A")])).cycles == [["A", "B", "A"]]
    three = bp(["A", "B", "C"], [("A", "B"), ("B", "C"), ("C", "A")])
    assert analyze_blueprint(three).cycles == [["A", "B", "C", "A"]]
    assert analyze_blueprint(bp(["A", "B"], [("A", "B")])).to_dict()["cycles"] == []


def test_orphan_whose_only_incoming_edge_is_invalid() -> None:
    # linter.test.ts: an edge from a missing node leaves its target an orphan.
    result = lint_blueprint(bp(["A", "B"], [("ghost", "B")]), {"A": 1, "B": 1})
    assert "INVALID_EDGE_SOURCE" in codes(result)
    (orphan,) = [i for i in issues_with(result, "ORPHAN_NODE") if i.node_id == "B"]
    assert orphan.severity == "error" and not result.is_valid


def test_built_in_names_batch_worker_keys_and_subflow_blueprints() -> None:
    names = [
        "loop-controller",
        "batch-scatter",
        "batch-gather",
        "webhook",
        "SubflowNode",
        "WaitNode",
        "SleepNode",
        "WebhookNode",
        "sleep",
        "wait",
        "subflow",
        "map",
        "loop",
    ]
    nodes = [{"id": f"n{i}", "uses": name} for i, name in enumerate(names)]
    assert "MISSING_IMPLEMENTATION" not in codes(lint_blueprint(bp(nodes), {}))
    scatter = {
        "id": "s",
        "uses": "batch-scatter",
        "params": {"workerUsesKey": "work", "gatherNodeId": "g"},
    }
    bad = lint_blueprint(bp([scatter]), {})
    assert codes(bad) == ["INVALID_BATCH_WORKER_KEY"]
    assert lint_blueprint(bp([scatter]), {"work": 1}).issues == []
    sub = {"id": "call", "uses": "subflow", "params": {"blueprintId": "child"}}
    assert lint_blueprint(bp([sub]), {}, {"child": {}}).issues == []
    assert codes(lint_blueprint(bp([sub]), {}, {})) == ["INVALID_SUBFLOW_BLUEPRINT_ID"]


def test_cycle_lint_follows_the_runtime_rule_for_conditions() -> None:
    # A condition inside the cycle but not on the edge into its entry: it still runs once.
    inner = {"source": "a", "target": "b", "condition": "context.go"}
    edges = [("start", "a"), inner, ("b", "a")]
    assert codes(lint_blueprint(bp(["start", "a", "b"], edges))) == ["CYCLE_RUNS_ONCE"]
    closing = {"source": "b", "target": "a", "condition": "context.go"}
    edges = [("start", "a"), ("a", "b"), closing]
    assert codes(lint_blueprint(bp(["start", "a", "b"], edges))) == ["UNBOUNDED_CYCLE"]
