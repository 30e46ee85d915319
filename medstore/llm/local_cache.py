"""A user cache for the local teacher: GGUF content hashes and the dequantised model they key.

Dequantising the GGUF takes ~20 s; a saved float32 copy loads in well under a second. Both the
copy and the hash of the file it came from live under ``cache_root()``, and every write is atomic
(temp file or temp folder, then rename) so a crash or a parallel start never leaves half a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from medstore.warehouse.hashing import HASH_TAG

log = logging.getLogger(__name__)

HASHES_FILE = "gguf-hashes.json"
MODELS_FOLDER = "models"


def cache_root() -> Path:
    """``$MEDSTORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/medstore``, else ``~/.cache/medstore``."""
    explicit = os.environ.get("MEDSTORE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "medstore"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as temp_file:
            temp_file.write(text)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def file_hash(path: Path, root: Path | None = None) -> str:
    """Tagged BLAKE2b-256 of the file's bytes, recomputed only when its size or mtime changes."""
    root = root or cache_root()
    path = path.resolve()
    stat = path.stat()
    index_path = root / HASHES_FILE
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    known = index.get(str(path))
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return known["hash"]
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as weights:
        for chunk in iter(lambda: weights.read(1 << 20), b""):
            digest.update(chunk)
    value = HASH_TAG + digest.hexdigest()
    index[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "hash": value}
    try:
        _write_atomically(index_path, json.dumps(index, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only cache costs a re-hash next time, nothing more
        log.warning("could not record the hash of %s in %s: %s", path.name, index_path, exc)
    return value


def model_folder(name: str, weights_hash: str, root: Path | None = None) -> Path:
    """Where the dequantised copy of the weights with this hash lives (it may not exist yet)."""
    digest = weights_hash.removeprefix(HASH_TAG)[:16]
    return (root or cache_root()) / MODELS_FOLDER / f"{name}-{digest}"


def ensure_folder(folder: Path, build: Callable[[Path], None]) -> bool:
    """Make ``folder`` exist by running ``build`` into a temp folder then renaming it.

    Returns True if this call built it. A folder that exists is complete: it only ever appears
    by rename. If another process finishes first, its copy wins and ours is discarded.
    """
    if folder.is_dir():
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".building-{folder.name}-"))
    try:
        build(building)
        try:
            os.rename(building, folder)
        except OSError:
            if not folder.is_dir():
                raise
            log.info("%s was built by another process meanwhile; using that one", folder)
            return False
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return True
