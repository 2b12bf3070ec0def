"""Errors the user can fix (a bad config key, a bad data folder, a refused resume).

The entry point prints a :class:`UserError` as one clear message, without a traceback (the
traceback goes to the run's log), and exits with status 1. Anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """An expected error: its message names the key, file or value and what was expected."""
