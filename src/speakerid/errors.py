"""Errors a user can act on.

Entry points print these as one line (no traceback): each message names the file or setting at
fault and what is wrong with it. Every class takes a single message string so that PyTorch can
re-raise it unchanged from a DataLoader worker.
"""

import errno

# A full disk or quota, a read-only or forbidden folder: the user's to fix, not a bug.
STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


class SpeakerIdError(Exception):
    """Base class for errors caused by the user's data or configuration."""


class AudioError(SpeakerIdError):
    """An audio file is missing, unreadable, empty, too short or in the wrong format."""


class CorpusError(SpeakerIdError):
    """A corpus folder is missing, empty or inconsistent with its configuration."""


class ListFileError(SpeakerIdError):
    """A trial or list file is malformed or names files that do not exist."""


class ConfigError(SpeakerIdError):
    """Configuration values contradict each other or the data."""
