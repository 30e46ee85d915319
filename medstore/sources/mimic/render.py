"""The packet as prompt text (deterministic: same packet, same text) and the facts in it that a
conversation's claims can be checked against."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _line(row: dict[str, Any], fields: tuple[str, ...]) -> str:
    return " | ".join(f"{name}={row[name]}" for name in fields if row.get(name) not in (None, ""))


def _section(title: str, content: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    rows = content["rows"]
    header = f"## {title}"
    if "total" in content and content["total"] > content["kept"]:
        header += f" (first {content['kept']} of {content['total']} rows by priority)"
    lines = [header]
    for row in rows:
        prefix = f"- day {row['day']}: " if "day" in row else "- "
        lines.append(prefix + _line(row, fields))
    if not rows:
        lines.append("- none")
    return lines


def render_packet(packet: dict[str, Any]) -> str:
    """Sections in the packet's order; notes verbatim at the end."""
    return "\n".join(_header(packet) + _table_sections(packet) + _note_sections(packet))


def _header(packet: dict[str, Any]) -> list[str]:
    """Who the patient is and how the stay began and ended."""
    demo = packet["demographics"]
    stay = packet["admission"]
    age = (
        f"{demo['age_at_admission']} (anchor_age 91: over 89, exact age withheld)"
        if demo["age_is_capped"]
        else str(demo["age_at_admission"])
    )
    return [
        f"# Admission {packet['hadm_id']} of patient {packet['subject_id']} "
        f"(admission {stay['admission_seq']} of this patient)",
        f"Sex: {demo['gender']}. Age at admission: {age}.",
        f"Admitted {stay['admittime']} ({stay['admission_type']}, from "
        f"{stay['admission_location']}); discharged {stay['dischtime']} to "
        f"{stay['discharge_location'] or 'unknown'}; hospital days: {stay['hospital_days']}; "
        f"died in hospital: {'yes' if stay['hospital_expire_flag'] else 'no'}.",
        f"Language: {stay['language'] or 'unknown'}. Insurance: {stay['insurance'] or 'unknown'}.",
        "",
    ]


def _table_sections(packet: dict[str, Any]) -> list[str]:
    """One line per row of each table section, with the fields the conversation may use."""
    lines = _section("Transfers", packet["transfers"], ("eventtype", "careunit", "intime"))
    lines += _section("Services", packet["services"], ("curr_service", "transfertime"))
    lines += _section(
        "ICU stays", packet["icu_stays"], ("first_careunit", "intime", "outtime", "los_days")
    )
    lines += _section(
        "Diagnoses (billing order)", packet["diagnoses"], ("icd_code", "icd_version", "long_title")
    )
    lines += _section("Procedures", packet["procedures"], ("icd_code", "long_title", "chartdate"))
    lines += _section(
        "Labs",
        packet["labs"],
        ("charttime", "label", "value", "valueuom", "ref_range_lower", "ref_range_upper", "flag"),
    )
    lines += _section(
        "Microbiology",
        packet["microbiology"],
        ("charttime", "spec_type_desc", "test_name", "org_name", "ab_name", "interpretation"),
    )
    lines += _section(
        "Prescriptions",
        packet["prescriptions"],
        ("starttime", "drug", "prod_strength", "dose_val_rx", "dose_unit_rx", "route"),
    )
    lines += _section(
        "Medication administrations (eMAR)",
        packet["emar"],
        ("charttime", "medication", "event_txt"),
    )
    return lines


def _note_sections(packet: dict[str, Any]) -> list[str]:
    """The notes verbatim, each under its id and time."""
    lines: list[str] = []
    for title, key in (
        ("Radiology reports", "radiology"),
        ("Discharge notes", "discharge_notes"),
        ("Radiology reports without an admission id, matched by time only", "unlinked_radiology"),
    ):
        rows = packet[key]["rows"]
        lines += ["", f"## {title}"]
        for row in rows:
            lines.append(f"### {row['note_id']} ({row['charttime']})\n{row['text'].strip()}")
        if not rows:
            lines.append("- none")
    return lines


def packet_facts(packet: dict[str, Any]) -> dict[str, Any]:
    """Names a conversation may cite, and every value of each lab test (as numbers)."""
    names: set[str] = set()
    lab_values: dict[str, set[float]] = defaultdict(set)
    for row in packet["labs"]["rows"]:
        if row["label"]:
            names.add(row["label"])
            if row["valuenum"] is not None:
                lab_values[row["label"]].add(float(row["valuenum"]))
    for section, fields in (
        ("diagnoses", ("long_title", "icd_code")),
        ("procedures", ("long_title", "icd_code")),
        ("prescriptions", ("drug",)),
        ("emar", ("medication",)),
        ("microbiology", ("org_name", "test_name", "spec_type_desc")),
        ("transfers", ("careunit",)),
        ("icu_stays", ("first_careunit",)),
    ):
        for row in packet[section]["rows"]:
            names.update(row[name] for name in fields if row.get(name))
    note_numbers: set[float] = set()
    for section in ("radiology", "discharge_notes", "unlinked_radiology"):
        for row in packet[section]["rows"]:
            match = re.search(r"EXAMINATION:\s*(.+)", row["text"])
            if match:
                names.add(match.group(1).strip())
            note_numbers.update(float(n) for n in NUMBER.findall(row["text"]))
    return {
        "names": sorted(names),
        "lab_values": {label: sorted(values) for label, values in sorted(lab_values.items())},
        "note_numbers": sorted(note_numbers),
        "hospital_days": packet["admission"]["hospital_days"],
    }
