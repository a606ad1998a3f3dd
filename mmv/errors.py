"""Errors that name what is wrong with a user's file, so that nothing fails silently."""


class CheckpointError(ValueError):
    """A checkpoint or weights folder that cannot be used as it is (missing, truncated, mismatched)."""


class UnsafePickleError(CheckpointError):
    """A pickle asked to run something that is not plain data; refused before it ran."""


class UnknownNameError(KeyError, ValueError):
    """A name the user gave (a model preset, a benchmark, a split) that does not exist; the message lists the
    known ones. A ``KeyError`` for lookups, a ``ValueError`` for the CLI, which reports bad input, not bugs."""

    def __str__(self) -> str:  # the message as written, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


class DataError(ValueError):
    """A data file that cannot be used: carries the path and the reason, so that a run can skip it,
    count it and report it."""

    def __init__(self, path: object, reason: str = ""):
        # Constructible from its message alone: DataLoader workers re-raise an exception in the main
        # process as ``type(message)``, and it must stay a DataError there.
        if not reason:
            path, reason = "", str(path)
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = str(path)
        self.reason = reason
