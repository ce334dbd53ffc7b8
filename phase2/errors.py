"""Errors a user can act on: each names what was wrong and where."""


class Phase2Error(Exception):
    """Base class for every error this package raises on bad input."""


class DatasetError(Phase2Error):
    """A retrieval collection is missing or malformed."""


class ParameterError(Phase2Error, ValueError):
    """A chapter, profile or CLI parameter is unknown or out of range."""


class EmbeddingStoreError(Phase2Error):
    """A published embedding store failed a check (ids, hash, re-encoded sample, manifest) and is refused."""


class ChapterError(Phase2Error):
    """A chapter notebook stopped with an error while executing."""
