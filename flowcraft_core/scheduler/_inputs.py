"""How an instance's input is built from the outputs its taken incoming edges carry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..blueprint import NodeDefinition
from ..context import INPUTS_PREFIX, OUTPUTS_PREFIX
from ..expressions import compile_expression
from ._edges import apply_transform
from ._graph import CompiledGraph, EdgeKind, split_key

# Built per node: a module global reads five times faster than ``EdgeKind.BACK``.
_BACK = EdgeKind.BACK

#: Marks an instance whose arrivals were used to build its input.
_CONSUMED: tuple[()] = ()


class InputRules:
    """The input rules over a run's outputs (flowcraft's): a single predecessor's output, a
    join's dict by source, or what a node's ``inputs`` select; edge transforms apply."""

    __slots__ = ()

    graph: CompiledGraph
    outputs: dict[str, Any]
    latest: dict[str, Any]
    actions: dict[str, str | None]
    _arrivals: dict[str, Any]

    def build_input(
        self, key: str, context: Mapping[str, Any], node: NodeDefinition | None = None
    ) -> Any:
        """The input of an instance: its single predecessor's output, or a join's dict.

        A node that declares ``inputs`` gets what they select; an edge ``transform`` that
        brought it then applies to that value, as in flowcraft.
        """
        node_id, iteration = split_key(key) if "#" in key else (key, 0)
        if node is None:
            node = self.graph.nodes[node_id]
        arrivals = self._arrivals.get(key)
        if node.inputs is not None:
            value = self._mapped_input(node, context)
            for edge, source in arrivals or ():
                if edge.transform is not None:
                    return apply_transform(edge, value, context, self.actions.get(source))
            return value
        if not arrivals:
            if iteration == 0 and not self.graph.first_inputs[node_id]:
                return context.get(INPUTS_PREFIX + node_id)  # a child run's start node
            return None
        outputs = self.outputs
        if iteration == 0:
            expected = arrivals[0][0].first_pass_inputs if arrivals[0][0].kind != _BACK else 1
        else:
            expected = len(self.graph.inputs_of(node_id, iteration))
        if expected == 1 or node.config.join_strategy == "any":
            edge, source = arrivals[0]
            if edge.transform is None:
                return outputs.get(source)
            return apply_transform(edge, outputs.get(source), context, self.actions.get(source))
        return {
            edge.source: outputs.get(source)
            if edge.transform is None
            else apply_transform(edge, outputs.get(source), context, self.actions.get(source))
            for edge, source in arrivals
        }

    def consume_input(
        self, key: str, context: Mapping[str, Any], node: NodeDefinition | None = None
    ) -> Any:
        """``build_input`` for an instance about to run once; its arrivals are let go."""
        value = self.build_input(key, context, node)
        if key in self._arrivals:
            self._arrivals[key] = _CONSUMED
        return value

    def latest_outputs(self) -> dict[str, Any]:
        """node id -> output of its latest completed iteration, in blueprint order."""
        latest, outputs = self.latest, self.outputs
        found = {}
        for n in self.graph.order:
            if n in latest:
                found[n] = latest[n]
            elif n in outputs:
                found[n] = outputs[n]
        return found

    def latest_output(self, node_id: str) -> Any:
        return self.output_of(node_id)[1]

    def output_of(self, node_id: str) -> tuple[bool, Any]:
        """``OutputSource``: (True, output) once ``node_id`` completed, else (False, None).

        ``latest`` holds the outputs of later loop iterations; a first iteration's output is
        under the node id itself in ``outputs``."""
        latest = self.latest
        if node_id in latest:
            return True, latest[node_id]
        outputs = self.outputs
        if node_id in outputs:
            return True, outputs[node_id]
        return False, None

    def _mapped_input(self, node: NodeDefinition, context: Mapping[str, Any]) -> Any:
        spec = node.inputs
        if isinstance(spec, str):
            return self._resolve_reference(spec, context)
        assert spec is not None
        return {name: self._resolve_reference(ref, context) for name, ref in spec.items()}

    def _resolve_reference(self, ref: str, context: Mapping[str, Any]) -> Any:
        """A node id (its latest output), ``node.path``, ``_outputs.node[.path]``, a context
        key, or ``context.path`` (flowcraft's order: a node's output before a context key)."""
        nodes = self.graph.nodes
        if ref in nodes:
            return self.latest_output(ref)
        if ref in context:
            return context[ref]
        if ref.startswith(OUTPUTS_PREFIX):
            ref = ref[len(OUTPUTS_PREFIX) :]
            if ref in nodes:
                return self.latest_output(ref)
        head, _, rest = ref.partition(".")
        if head in nodes:
            return compile_expression(f"value.{rest}").evaluate({"value": self.latest_output(head)})
        if head == "context" and rest:
            return compile_expression(ref).evaluate({"context": context})
        return None
