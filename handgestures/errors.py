"""Errors the user can fix (a bad override, a bad data folder): one clear message, no traceback."""


class UserError(Exception):
    """An expected error, caused by the input and explained by its message."""
