"""Vital signs as a teacher writes them ("98/min", "150/90 mm Hg", "36.8 C", "97% on room air"):
a number in a plausible format and range for a living patient, or a reason.

Pure functions; ``vital_problem`` returns None for a plausible value, else a short reason.
The ranges are wide on purpose (a shocked or febrile patient is plausible), they only refuse
what no patient has and what is not a measurement at all ("", "normal", "N/A").
"""

from __future__ import annotations

import re
from functools import lru_cache

NUMBER = r"(\d{1,3}(?:\.\d{1,2})?)"
# The value first, then its unit, then optional context ("on room air", "irregular").
SIMPLE = re.compile(rf"^\s*~?{NUMBER}\s*(?P<unit>[^\d\s][^\d]*)?$")
BLOOD_PRESSURE = re.compile(rf"^\s*{NUMBER}\s*/\s*{NUMBER}\s*(?P<unit>[^\d][^\d]*)?$")

RANGES = {
    "heart_rate": (20, 250),
    "respiratory_rate": (4, 70),
    "oxygen_saturation": (50, 100),
}
SYSTOLIC = (50, 260)
DIASTOLIC = (20, 160)
CELSIUS = (30.0, 43.5)
FAHRENHEIT = (86.0, 110.0)
UNITS = {
    "heart_rate": re.compile(r"^(?:bpm|/ ?min|beats?(?: per |/)min(?:ute)?|per min(?:ute)?)", re.I),
    "respiratory_rate": re.compile(
        r"^(?:/ ?min|breaths?(?: per |/)min(?:ute)?|bpm|rpm|per min(?:ute)?)", re.I
    ),
    "oxygen_saturation": re.compile(r"^%", re.I),
    "blood_pressure": re.compile(r"^mm ?hg", re.I),
}
EXAMPLES = {
    "heart_rate": "'88/min'",
    "blood_pressure": "'128/82 mm Hg'",
    "respiratory_rate": "'16/min'",
    "temperature": "'37.2 C'",
    "oxygen_saturation": "'97% on room air'",
}


@lru_cache(maxsize=65536)  # readings repeat ("98/min"), and the answer is a pure function
def vital_problem(name: str, value: str) -> str | None:
    """Why ``value`` is not a plausible reading of vital sign ``name``; None when it is.

    Names: heart_rate, blood_pressure, respiratory_rate, temperature, oxygen_saturation; any
    other name is not checked.
    """
    if name not in EXAMPLES:
        return None
    if not value or not value.strip():
        return f"is blank; give a measurement such as {EXAMPLES[name]}"
    if name == "blood_pressure":
        return blood_pressure_problem(value)
    if name == "temperature":
        return temperature_problem(value)
    match = SIMPLE.match(value)
    if not match:
        return f"{value!r} is not a measurement; write it like {EXAMPLES[name]}"
    unit_problem = wrong_unit(name, match.group("unit"))
    if unit_problem:
        return unit_problem
    low, high = RANGES[name]
    number = float(match.group(1))
    if not low <= number <= high:
        return f"{value!r} is outside the plausible range {low}-{high}"
    return None


def wrong_unit(name: str, unit: str | None) -> str | None:
    if not unit or not unit.strip():
        return None
    if not UNITS[name].match(unit.strip()):
        return f"unit {unit.strip()!r} is not a unit of this vital sign (e.g. {EXAMPLES[name]})"
    return None


def blood_pressure_problem(value: str) -> str | None:
    match = BLOOD_PRESSURE.match(value)
    if not match:
        return f"{value!r} is not systolic/diastolic; write it like {EXAMPLES['blood_pressure']}"
    unit_problem = wrong_unit("blood_pressure", match.group("unit"))
    if unit_problem:
        return unit_problem
    systolic, diastolic = float(match.group(1)), float(match.group(2))
    if not SYSTOLIC[0] <= systolic <= SYSTOLIC[1]:
        return (
            f"systolic {match.group(1)} is outside the plausible range {SYSTOLIC[0]}-{SYSTOLIC[1]}"
        )
    if not DIASTOLIC[0] <= diastolic <= DIASTOLIC[1]:
        return (
            f"diastolic {match.group(2)} is outside the plausible range "
            f"{DIASTOLIC[0]}-{DIASTOLIC[1]}"
        )
    if diastolic >= systolic:
        return f"{value!r}: the diastolic pressure must be below the systolic"
    return None


def temperature_problem(value: str) -> str | None:
    match = SIMPLE.match(value)
    if not match:
        return f"{value!r} is not a measurement; write it like {EXAMPLES['temperature']}"
    number = float(match.group(1))
    unit = (match.group("unit") or "").strip().lstrip("°º ").lower()
    if unit.startswith(("f", "deg f", "degrees f")):
        scale = "F"
    elif unit.startswith(("c", "deg c", "degrees c")):
        scale = "C"
    elif not unit:
        scale = "F" if number >= 50 else "C"
    else:
        return f"unit {unit!r} is not a temperature scale (e.g. {EXAMPLES['temperature']})"
    bounds = FAHRENHEIT if scale == "F" else CELSIUS
    if not bounds[0] <= number <= bounds[1]:
        return f"{value!r} is outside the plausible range {bounds[0]}-{bounds[1]} {scale}"
    return None
