"""Project exceptions. Every message names what is wrong, where, and what to do."""


class NbshipError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""

    exit_code = 1


class ConfigError(NbshipError):
    """A parameter or configuration file is missing or malformed."""

    exit_code = 2


class DataError(NbshipError):
    """An input table cannot be read (missing, empty, unreadable, wrong format)."""

    exit_code = 3


class DataValidationError(DataError):
    """A table does not satisfy the declared schema.

    Attributes:
        issues: the failed checks, each a dict with ``column``, ``rule``,
            ``message`` and ``examples`` (a few offending values or rows).
    """

    def __init__(self, message: str, issues: list[dict] | None = None):
        super().__init__(message)
        self.issues = issues or []


class ModelError(NbshipError):
    """A model cannot be found, loaded or promoted."""

    exit_code = 4
