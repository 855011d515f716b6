"""Voicemail recordings as files in the service's own data folder, one per ticket."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

_NAME = re.compile(r"voicemail-[A-Za-z0-9._-]{1,100}\.wav\Z")


def recordings_folder(settings) -> str:
    """``[voicemail] dir``, or ``recordings`` beside the SQLite file (``var/recordings`` on
    PostgreSQL): the same data directory as the FastAGI spool's."""
    if settings.voicemail.dir:
        return settings.voicemail.dir
    url = make_url(settings.database.url)
    on_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    return os.path.join(os.path.dirname(url.database) if on_file else "var", "recordings")


class RecordingStore:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def put(self, key: str, audio: bytes) -> str:
        """Keep ``audio`` under a name made from ``key`` (a call id); written whole or not
        at all. Returns the file name."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:100].lstrip(".") or "call"
        name = f"voicemail-{safe}.wav"
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(audio)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name

    def path(self, name: str) -> Path | None:
        """The file of a stored name, or None (a name that is not ours is never a path)."""
        if not _NAME.match(name or ""):
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def remove(self, name: str) -> bool:
        """Delete a stored recording (personal-data retention); True if a file was there."""
        path = self.path(name)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True
