"""Moved to `pipeline.files`; this name stays only for imports not yet updated (remove once none is left)."""

from .files import *  # noqa: F401,F403
from .files import TEMP_TAG, LOCK_SUFFIX, OutputLock, created_atomically, lock_output, lock_path_for, remove_stale_temporaries, stale_temporaries  # noqa: F401
