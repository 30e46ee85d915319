"""The deterministic per-admission packet: everything the conversation may draw on, read from the
materialised packet tables in a fixed order, with row caps that keep the prompt bounded.

Same source files and caps → byte-identical canonical JSON, so its hash identifies the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medstore.sources.mimic.duck import MimicDataError, MimicDB
from medstore.warehouse.hashing import canonical_json, json_hash

PACKET_VERSION = "1"


@dataclass(frozen=True)
class RowCaps:
    """How many rows of the long sections a packet keeps (the rest are counted, not shown)."""

    labs: int = 120
    radiology: int = 8
    emar: int = 120

    def as_dict(self) -> dict[str, int]:
        return {"labs": self.labs, "radiology": self.radiology, "emar": self.emar}


# packet section → (packet table, cap attribute or None). Order is the packet's reading order.
SECTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("transfers", "packet_transfers", None),
    ("services", "packet_services", None),
    ("icu_stays", "packet_icu_stays", None),
    ("diagnoses", "packet_diagnoses", None),
    ("procedures", "packet_procedures", None),
    ("labs", "packet_labs", "labs"),
    ("microbiology", "packet_microbiology", None),
    ("prescriptions", "packet_prescriptions", None),
    ("emar", "packet_emar", "emar"),
    ("radiology", "packet_radiology", "radiology"),
    ("discharge_notes", "packet_discharge_notes", None),
    ("unlinked_radiology", "packet_unlinked_radiology", "radiology"),
)
DEMOGRAPHIC_FIELDS = (
    "gender",
    "anchor_age",
    "anchor_year",
    "anchor_year_group",
    "age_at_admission",
    "age_is_capped",
    "dod",
)
# Columns that only drive ordering and capping, not content.
CONTROL_COLUMNS = ("hadm_id", "row_order", "cap_rank", "section_total")


def subject_admissions(db: MimicDB, subject_id: int) -> list[dict[str, Any]]:
    """The patient's admissions in the order the stay happened (admittime, then hadm_id)."""
    rows = db.select("subject_admissions", subject_id=subject_id)
    if not rows:
        raise MimicDataError(
            f"subject_id {subject_id}: no admissions in {db.files['hosp.admissions'].label}"
        )
    return rows


def section_rows(
    db: MimicDB, table: str, hadm_ids: list[int], cap: int | None
) -> dict[int, dict[str, Any]]:
    """One section for several admissions, each in row_order; a capped section keeps the rows
    its cap_rank puts first."""
    keep = " AND cap_rank <= ?" if cap is not None else ""
    params: list[Any] = [hadm_ids] + ([cap] if cap is not None else [])
    # Not a named query: `table` varies (it comes from SECTIONS, never from user input) and only
    # capped tables have cap_rank. The values are parameters.
    rows = db.query(
        f"SELECT * FROM packet.{table} WHERE list_contains(?, hadm_id){keep}"
        " ORDER BY hadm_id, row_order",
        params,
    )
    grouped: dict[int, list[dict[str, Any]]] = {hadm_id: [] for hadm_id in hadm_ids}
    totals: dict[int, int] = {}
    for row in rows:
        totals[row["hadm_id"]] = row.get("section_total", 0)
        grouped[row["hadm_id"]].append({k: v for k, v in row.items() if k not in CONTROL_COLUMNS})
    if cap is None:
        return {hadm_id: {"rows": kept} for hadm_id, kept in grouped.items()}
    return {
        hadm_id: {"rows": kept, "total": totals.get(hadm_id, 0), "kept": len(kept), "cap": cap}
        for hadm_id, kept in grouped.items()
    }


def build_packets(
    db: MimicDB, hadm_ids: list[int], caps: RowCaps | None = None
) -> dict[int, dict[str, Any]]:
    """The packets of several admissions (one query per section for all of them)."""
    caps = caps or RowCaps()
    admissions = {row["hadm_id"]: row for row in db.select("admissions_by_id", hadm_ids=hadm_ids)}
    for hadm_id in hadm_ids:
        if hadm_id not in admissions:
            raise MimicDataError(f"hadm_id {hadm_id}: not in {db.files['hosp.admissions'].label}")
    packets: dict[int, dict[str, Any]] = {}
    for hadm_id in hadm_ids:
        admission = admissions[hadm_id]
        packets[hadm_id] = {
            "packet_version": PACKET_VERSION,
            "subject_id": admission["subject_id"],
            "hadm_id": hadm_id,
            "row_caps": caps.as_dict(),
            "demographics": {name: admission[name] for name in DEMOGRAPHIC_FIELDS},
            "admission": {
                name: value
                for name, value in admission.items()
                if name not in DEMOGRAPHIC_FIELDS and name not in ("subject_id", "hadm_id")
            },
        }
    for section, table, cap_name in SECTIONS:
        cap = getattr(caps, cap_name) if cap_name else None
        for hadm_id, content in section_rows(db, table, hadm_ids, cap).items():
            packets[hadm_id][section] = content
    return packets


def build_packet(db: MimicDB, hadm_id: int, caps: RowCaps | None = None) -> dict[str, Any]:
    """The packet of one admission as plain JSON values."""
    return build_packets(db, [hadm_id], caps)[hadm_id]


def packet_json(packet: dict[str, Any]) -> str:
    """The packet's one spelling: canonical JSON (sorted keys, no whitespace)."""
    return canonical_json(packet)


def packet_hash(packet: dict[str, Any]) -> str:
    return json_hash(packet)


def cohort(db: MimicDB, limit: int) -> list[dict[str, Any]]:
    """The top ``limit`` patients by admission count (ties: lower subject_id first)."""
    return db.select("cohort", cohort_size=limit)
