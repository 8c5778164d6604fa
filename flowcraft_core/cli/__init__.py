"""The ``flowcraft`` command line (placeholder until the commands land)."""


def main() -> None:
    """Entry point of the ``flowcraft`` console script."""
