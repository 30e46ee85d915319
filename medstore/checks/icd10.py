"""ICD-10-CM code lookup, from the official CMS code list that simple-icd-10-cm ships.

Importing simple_icd_10_cm parses the whole tabular XML (about 1.5 s); validating a code needs
only the flat code list, which reads in a few milliseconds. The file is found without importing
the package. Chapters (plain numbers) and blocks ("A00-A09") are not codes.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


def code_list_file() -> Path:
    spec = importlib.util.find_spec("simple_icd_10_cm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("simple-icd-10-cm is not installed: pip install simple-icd-10-cm")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = sorted(folder.glob("code-list-*.txt"))
    if not files:
        raise RuntimeError(f"{folder}: no ICD-10-CM code list (code-list-*.txt) found")
    return files[-1]


@cache
def known_codes() -> frozenset[str]:
    """Every ICD-10-CM category, subcategory and code, without dots (e.g. ``I2101``)."""
    codes = set()
    with code_list_file().open(encoding="utf-8") as lines:
        for line in lines:
            code = line.split(maxsplit=1)[0] if line.strip() else ""
            if code and not code.isdigit() and "-" not in code:
                codes.add(code)
    return frozenset(codes)


def is_icd10_code(code: str) -> bool:
    """True for a category, subcategory or code in the current ICD-10-CM release, with or
    without the dot (``I21.01`` and ``I2101``)."""
    return code.count(".") <= 1 and code.replace(".", "") in known_codes()
