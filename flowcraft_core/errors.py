"""The root of every error Flowcraft raises for a user to catch.

``except FlowcraftError`` catches them all; each also keeps the built-in base it always had
(``LookupError`` for an unknown run, ``ValueError`` for bad input, ...), so existing handlers
keep working. Errors that only carry control flow inside a driver (a node parking, a lost
conditional write) are not among them.
"""

from __future__ import annotations


class FlowcraftError(Exception):
    """Base class of the errors Flowcraft raises for callers."""
