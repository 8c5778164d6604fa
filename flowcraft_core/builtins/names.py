"""Names of the built-in node implementations (registered by default, overridable)."""

SLEEP = "sleep"
WAIT = "wait"
SUBFLOW = "subflow"
MAP = "map"
LOOP = "loop"

BUILTIN_NODE_NAMES: frozenset[str] = frozenset({SLEEP, WAIT, SUBFLOW, MAP, LOOP})
