"""An upload spooled to a temporary file as it arrives: counted, hashed and never held whole.

Validating a file needs all of it (a repeated id may come last), and a gRPC stream can be read only
once, so the bytes go to disk first; the file is read again, streaming, to validate and store it.
"""

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from datasets_service.domain.errors import UploadTooLarge

WRITE_BYTES = 1 << 20  # chunks are gathered to this size before a worker thread writes and hashes them


@dataclass(frozen=True, slots=True)
class SpooledUpload:
    path: Path
    size_bytes: int
    sha256: str  # of the bytes as sent

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


PREFIX, SUFFIX = "wb-upload-", ".spool"
# No upload outlives the gateway's deadline for it (an hour): an older spool file is a crash's leftover.
STALE_AFTER_S = 2 * 3600


def ensure_spool_dir(directory: str) -> None:
    """Creates the spool directory when one is configured (else the system's is used, as it is),
    and removes what a crashed process left there."""
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
    folder = Path(directory or tempfile.gettempdir())
    now = time.time()
    for leftover in folder.glob(f"{PREFIX}*{SUFFIX}"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if now - leftover.stat().st_mtime > STALE_AFTER_S:
                leftover.unlink()


async def spool(chunks: AsyncIterable[bytes], directory: str, max_bytes: int) -> SpooledUpload:
    """Writes the chunks to a new file in directory (empty: the system's temporary directory).

    Raises UploadTooLarge as soon as they add up to more than max_bytes; the file is removed
    whenever this does not return it.
    """
    handle, name = tempfile.mkstemp(prefix=PREFIX, suffix=SUFFIX, dir=directory or None)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    try:
        with os.fdopen(handle, "wb") as file:

            def write(parts: list[bytes]) -> None:
                data = b"".join(parts)
                digest.update(data)
                file.write(data)

            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_BYTES:
                    await asyncio.to_thread(write, pending)
                    pending, pending_size = [], 0
            await asyncio.to_thread(write, pending)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)  # at once, even when cancelled
        raise
    return SpooledUpload(path, size, digest.hexdigest())
