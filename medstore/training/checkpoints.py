"""Resumable runs: the Trainer's checkpoints in ``OUT/checkpoints``, which one ``--resume``
goes on from, and the note beside them that ties them to their run and its data.

A run killed at any point (kill -9 included) leaves its latest complete checkpoints; ``--resume``
(the last one) or ``--resume PATH`` continues from that step with the optimiser, scheduler and
data order restored, and refuses when the data is not the data the checkpoints were trained on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from medstore.training.config import LAST_CHECKPOINT, TrainError

CHECKPOINTS = "checkpoints"
RUN_NOTE = "medstore_run.json"
TRAINING_MANIFEST = "training_manifest.json"


def checkpoints_dir(out_dir: Path) -> Path:
    return out_dir / CHECKPOINTS


def last_checkpoint(folder: Path) -> Path | None:
    """The ``checkpoint-N`` folder with the highest N that the Trainer finished writing: it
    writes ``trainer_state.json`` last, so one killed mid-save (no state, or half of it) is
    passed over for the one before."""
    if not folder.is_dir():
        return None
    numbered = [
        (int(path.name.removeprefix("checkpoint-")), path)
        for path in folder.glob("checkpoint-*")
        if path.is_dir() and path.name.removeprefix("checkpoint-").isdigit()
    ]
    for _, path in sorted(numbered, reverse=True):
        if complete(path):
            return path
    return None


def complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def check_out_dir(out_dir: Path, resume: str | None) -> Path | None:
    """Refuse a file, or a folder holding anything but an earlier (or, with ``--resume``, an
    interrupted) training run. Returns the checkpoint to resume from, if any."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainError(f"{out_dir}: exists and is not a folder")
    if resume is not None:
        return resume_checkpoint(out_dir, resume)
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return None
    if (out_dir / TRAINING_MANIFEST).exists():
        return None
    if last_checkpoint(checkpoints_dir(out_dir)) is not None:
        raise TrainError(
            f"{out_dir}: holds the checkpoints of an unfinished run; add --resume to go on from "
            "the last one, or choose another --out"
        )
    raise TrainError(f"{out_dir}: folder is not empty and holds no medstore training run")


def resume_checkpoint(out_dir: Path, resume: str) -> Path:
    """The checkpoint ``--resume`` names: the last one in OUT/checkpoints, or a folder."""
    if resume == LAST_CHECKPOINT:
        found = last_checkpoint(checkpoints_dir(out_dir))
        if found is None:
            raise TrainError(
                f"--resume: no checkpoint in {checkpoints_dir(out_dir)} to resume from "
                "(checkpoints are saved every --save-steps steps)"
            )
        return found
    folder = Path(resume).resolve()
    if not complete(folder):
        raise TrainError(
            f"--resume {resume}: not a complete checkpoint folder (no readable trainer_state.json)"
        )
    return folder


def checkpoint_step(checkpoint: Path) -> int:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("global_step", 0))


def read_run_note(out_dir: Path) -> dict[str, Any]:
    note = checkpoints_dir(out_dir) / RUN_NOTE
    if not note.is_file():
        return {}
    return json.loads(note.read_text(encoding="utf-8"))


def check_resumable(out_dir: Path, fingerprint: str) -> dict[str, Any]:
    """The interrupted run's note; a resume on other data than it trained on is refused."""
    note = read_run_note(out_dir)
    if note.get("data_fingerprint") not in (None, fingerprint):
        raise TrainError(
            f"--resume: the data is not what the checkpoints in {checkpoints_dir(out_dir)} were "
            "trained on (its fingerprint changed); train into a new --out instead"
        )
    return note


def start_checkpoints(out_dir: Path, resuming: bool, note: dict[str, Any]) -> None:
    """Before training: a fresh run clears the checkpoints of the run it replaces; the note
    names the run (and data) the checkpoints belong to."""
    folder = checkpoints_dir(out_dir)
    if not resuming and folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_NOTE).write_text(json.dumps(note, indent=1) + "\n", encoding="utf-8")


def remove_empty_folders(out_dir: Path) -> None:
    """Undo what building a trainer creates (empty OUT/checkpoints, OUT) when it then refuses."""
    for folder in (checkpoints_dir(out_dir), out_dir):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
