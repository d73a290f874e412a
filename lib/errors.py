"""Typed exceptions for user-facing errors.

Every message is one line naming the file / key, what was expected, what was found and the fix.
Entry scripts turn these into a one-line message and a non-zero exit code; they never reach the user
as a traceback.
"""


class RefineError(Exception):
    """Base class of every error a user can fix (bad file, bad config, bad flag)."""


class ConfigError(RefineError, ValueError):
    """A YAML config or a command-line combination is invalid."""


class AssetError(RefineError, FileNotFoundError):
    """A licensed asset (SMPL model, joint regressor) is missing or malformed."""


class DataError(RefineError, ValueError):
    """A data file (pickle, npz, json) does not follow its documented schema."""


class CheckpointError(RefineError, ValueError):
    """A checkpoint is missing, malformed or incompatible with the current model."""


class WriteError(RefineError, OSError):
    """A file could not be written (no space, file too large, no permission, read-only folder).

    Raised by ``lib.atomic_write``: the temp file is removed and the previous file, if any, is unchanged.
    """
