"""One exception type for every user-facing failure, so the CLI can print one line and exit non-zero."""


class LatentloopError(Exception):
    """A problem with the user's input (file, config, checkpoint, puzzle) that deserves a one-line message."""


class DataError(LatentloopError):
    """A dataset, puzzle or data file is missing, malformed or inconsistent."""


class ConfigError(LatentloopError):
    """An unknown preset, an unknown or ill-typed config key, or an impossible combination of settings."""


class CheckpointError(LatentloopError):
    """A checkpoint is missing, corrupt or does not match the model it is loaded into."""
