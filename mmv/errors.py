"""Errors that name what is wrong with a user's file, so that nothing fails silently."""


class CheckpointError(ValueError):
    """A checkpoint or weights folder that cannot be used as it is (missing, truncated, mismatched)."""


class UnsafePickleError(CheckpointError):
    """A pickle asked to run something that is not plain data; refused before it ran."""
