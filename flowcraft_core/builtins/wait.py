"""``wait``: park the run as ``awaiting`` until someone resumes it with an action and output.

The resume's ``action`` routes the node's outgoing edges exactly like a node's own action.
"""

from __future__ import annotations

from ..nodes import NodeContext, NodeResult


def wait_node(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=ctx.input, awaiting=True)
