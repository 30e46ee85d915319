"""The bundled model under its hub id: adapters trained on it name their base
``HuggingFaceTB/SmolLM2-135M-Instruct`` (what it is a GGUF of), and this module places the
dequantised weights in the Hugging Face hub cache under that id, so that
``AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")`` and
``PeftModel.from_pretrained`` resolve it offline (``HF_HUB_OFFLINE=1``) on this machine.

The cache layout is the hub's own: ``models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/
<revision>/`` with ``refs/main`` naming the revision. The revision is local: the first 40 hex
digits of the GGUF's content hash (the weights hash recorded with every run), not a hub commit.
A cache that already has ``refs/main`` (the real model, downloaded) keeps it: the adapter then
loads onto the hub's own weights, the ones the GGUF was made from. Files are hard links to the
dequantised copy in medstore's cache (symbolic links across file systems), so nothing is copied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medstore.warehouse.hashing import HASH_TAG, uuid7

BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def hub_cache_dir() -> Path:
    """``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default, read now (not
    when huggingface_hub was imported)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def local_revision(weights_hash: str) -> str:
    """The snapshot name of the bundled weights with this hash (40 hex digits, like a commit)."""
    return weights_hash.removeprefix(HASH_TAG)[:40]


def repo_folder(hub_id: str, cache: Path) -> Path:
    return cache / f"models--{hub_id.replace('/', '--')}"


def link_files(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        try:
            os.link(path, target / path.name)
        except OSError:
            (target / path.name).symlink_to(path.resolve())


def register_bundled(folder: Path, weights_hash: str, cache: Path | None = None) -> dict[str, str]:
    """Place the dequantised bundled model (``folder``) in the hub cache under its hub id; a
    no-op when it is there. Returns the hub id, the local revision, the snapshot and the
    revision ``refs/main`` names (another one when the real model was downloaded)."""
    cache = cache or hub_cache_dir()
    repo = repo_folder(BUNDLED_HUB_ID, cache)
    revision = local_revision(weights_hash)
    snapshot = repo / "snapshots" / revision
    if not snapshot.is_dir():
        staging = snapshot.parent / f".{revision}.writing-{uuid7()}"
        try:
            link_files(folder, staging)
            os.rename(staging, snapshot)
        except OSError:
            if not snapshot.is_dir():  # a parallel registration won the race otherwise
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    main = repo / "refs" / "main"
    if not main.is_file():
        main.parent.mkdir(parents=True, exist_ok=True)
        main.write_text(revision, encoding="utf-8")
    return {
        "hub_id": BUNDLED_HUB_ID,
        "local_revision": revision,
        "snapshot": str(snapshot),
        "refs_main": main.read_text(encoding="utf-8").strip(),
    }
