"""``python -m flowcraft_core.cli``: the same as the ``flowcraft`` command."""

from . import main

main()
