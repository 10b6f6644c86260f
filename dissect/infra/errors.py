"""The one exception type for problems a user can cause (bad input, missing files)."""

from __future__ import annotations

__all__ = ["AuditError"]


class AuditError(Exception):
    """A problem the user can fix. Its message is one line: what is wrong and what to do.

    Command-line entry points catch it once, print the message to stderr and exit with code 2.
    """
