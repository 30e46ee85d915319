"""Where the shipped folders (sql/, prompts/, data/) are, in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def resource_dir(name: str) -> Path:
    """The checkout's top-level folder if present, else the copy packed into the wheel."""
    for candidate in (REPO_DIR / name, PACKAGE_DIR / "_shipped" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"medstore resource folder {name!r} not found next to {PACKAGE_DIR}")


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from medstore import __version__

    head = REPO_DIR / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_path = REPO_DIR / ".git" / ref[5:]
            commit = ref_path.read_text().strip() if ref_path.exists() else ""
        else:
            commit = ref
    except OSError:
        commit = ""
    return f"{__version__}+{commit[:12]}" if commit else __version__
