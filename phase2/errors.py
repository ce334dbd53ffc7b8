"""Errors a user can act on: each names what was wrong and where."""


class Phase2Error(Exception):
    """Base class for every error this package raises on bad input."""


class DatasetError(Phase2Error):
    """A retrieval collection is missing or malformed."""


class ParameterError(Phase2Error, ValueError):
    """A chapter, profile or CLI parameter is unknown or out of range."""


class NotApplicable(Phase2Error, ValueError):
    """A codec cannot be fitted on the vectors it is given (too few of them, or a dimension it does not divide):
    the tables report it as not applicable for that collection and model, with this reason."""


class EmbeddingStoreError(Phase2Error):
    """A published embedding store failed a check (ids, hash, re-encoded sample, manifest) and is refused."""


class ChapterError(Phase2Error):
    """A chapter notebook stopped with an error while executing."""


class PrecomputeError(Phase2Error):
    """One or more precompute tasks failed; every other task ran (the message lists each failure)."""
