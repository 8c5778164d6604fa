"""Names of the built-in node implementations (registered by default, overridable).

flowcraft's own names (``loop-controller``, ``batch-scatter``, ``batch-gather``, ``webhook``)
and its class keys (``SubflowNode``, ``WaitNode``, ``SleepNode``, ``WebhookNode``) are aliases,
so its blueprints load unchanged.
"""

SLEEP = "sleep"
WAIT = "wait"
SUBFLOW = "subflow"
MAP = "map"
LOOP = "loop"
LOOP_CONTROLLER = "loop-controller"
BATCH_SCATTER = "batch-scatter"
BATCH_GATHER = "batch-gather"
WEBHOOK = "webhook"

#: flowcraft's class keys, and the built-in each one names.
CLASS_ALIASES: dict[str, str] = {
    "SubflowNode": SUBFLOW,
    "WaitNode": WAIT,
    "SleepNode": SLEEP,
    "WebhookNode": WEBHOOK,
    "BatchScatterNode": BATCH_SCATTER,
    "BatchGatherNode": BATCH_GATHER,
}

#: Nodes that control a loop (a cycle holding one repeats; their conditional edges go first).
LOOP_NAMES: frozenset[str] = frozenset({LOOP, LOOP_CONTROLLER})
#: Nodes that park the run until something outside resumes it.
PARKING_NAMES: frozenset[str] = frozenset({WAIT, WEBHOOK, "WaitNode", "WebhookNode"})

BUILTIN_NODE_NAMES: frozenset[str] = frozenset(
    {
        SLEEP,
        WAIT,
        SUBFLOW,
        MAP,
        LOOP,
        LOOP_CONTROLLER,
        BATCH_SCATTER,
        BATCH_GATHER,
        WEBHOOK,
        *CLASS_ALIASES,
    }
)
