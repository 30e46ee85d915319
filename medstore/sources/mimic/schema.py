"""The MIMIC-IV / MIMIC-IV-Note tables the packet reads: official file names, columns in the
official order, and DuckDB types.

Copied from the MIMIC-IV table definitions (MIT-LCP/mimic-code, MIT licence) for the tables used
here; identical in v2.2 and v3.x. Every column is read by name, so a distribution whose files
carry extra columns still loads; a missing column is a one-line error naming file and column.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    module: str  # hosp | icu | note
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type), official order

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def file(self) -> str:
        """Path inside the module root, as distributed."""
        return f"{self.module}/{self.name}.csv.gz"

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _table(qualified: str, columns: str) -> Table:
    module, name = qualified.split(".")
    pairs = tuple(tuple(item.split(":")) for item in columns.split())
    return Table(module, name, pairs)  # type: ignore[arg-type]


TABLES: dict[str, Table] = {
    table.qualified: table
    for table in (
        _table(
            "hosp.patients",
            "subject_id:INTEGER gender:VARCHAR anchor_age:SMALLINT anchor_year:SMALLINT "
            "anchor_year_group:VARCHAR dod:DATE",
        ),
        _table(
            "hosp.admissions",
            "subject_id:INTEGER hadm_id:INTEGER admittime:TIMESTAMP dischtime:TIMESTAMP "
            "deathtime:TIMESTAMP admission_type:VARCHAR admit_provider_id:VARCHAR "
            "admission_location:VARCHAR discharge_location:VARCHAR insurance:VARCHAR "
            "language:VARCHAR marital_status:VARCHAR race:VARCHAR edregtime:TIMESTAMP "
            "edouttime:TIMESTAMP hospital_expire_flag:SMALLINT",
        ),
        _table(
            "hosp.transfers",
            "subject_id:INTEGER hadm_id:INTEGER transfer_id:INTEGER eventtype:VARCHAR "
            "careunit:VARCHAR intime:TIMESTAMP outtime:TIMESTAMP",
        ),
        _table(
            "hosp.services",
            "subject_id:INTEGER hadm_id:INTEGER transfertime:TIMESTAMP prev_service:VARCHAR "
            "curr_service:VARCHAR",
        ),
        _table(
            "hosp.diagnoses_icd",
            "subject_id:INTEGER hadm_id:INTEGER seq_num:INTEGER icd_code:VARCHAR "
            "icd_version:SMALLINT",
        ),
        _table(
            "hosp.d_icd_diagnoses",
            "icd_code:VARCHAR icd_version:SMALLINT long_title:VARCHAR",
        ),
        _table(
            "hosp.procedures_icd",
            "subject_id:INTEGER hadm_id:INTEGER seq_num:INTEGER chartdate:DATE "
            "icd_code:VARCHAR icd_version:SMALLINT",
        ),
        _table(
            "hosp.d_icd_procedures",
            "icd_code:VARCHAR icd_version:SMALLINT long_title:VARCHAR",
        ),
        _table(
            "hosp.labevents",
            "labevent_id:INTEGER subject_id:INTEGER hadm_id:INTEGER specimen_id:INTEGER "
            "itemid:INTEGER order_provider_id:VARCHAR charttime:TIMESTAMP storetime:TIMESTAMP "
            "value:VARCHAR valuenum:DOUBLE valueuom:VARCHAR ref_range_lower:DOUBLE "
            "ref_range_upper:DOUBLE flag:VARCHAR priority:VARCHAR comments:VARCHAR",
        ),
        _table(
            "hosp.d_labitems",
            "itemid:INTEGER label:VARCHAR fluid:VARCHAR category:VARCHAR",
        ),
        _table(
            "hosp.microbiologyevents",
            "microevent_id:INTEGER subject_id:INTEGER hadm_id:INTEGER "
            "micro_specimen_id:INTEGER order_provider_id:VARCHAR chartdate:TIMESTAMP "
            "charttime:TIMESTAMP spec_itemid:INTEGER spec_type_desc:VARCHAR test_seq:INTEGER "
            "storedate:TIMESTAMP storetime:TIMESTAMP test_itemid:INTEGER test_name:VARCHAR "
            "org_itemid:INTEGER org_name:VARCHAR isolate_num:SMALLINT quantity:VARCHAR "
            "ab_itemid:INTEGER ab_name:VARCHAR dilution_text:VARCHAR "
            "dilution_comparison:VARCHAR dilution_value:DOUBLE interpretation:VARCHAR "
            "comments:VARCHAR",
        ),
        _table(
            "hosp.prescriptions",
            "subject_id:INTEGER hadm_id:INTEGER pharmacy_id:INTEGER poe_id:VARCHAR "
            "poe_seq:INTEGER order_provider_id:VARCHAR starttime:TIMESTAMP stoptime:TIMESTAMP "
            "drug_type:VARCHAR drug:VARCHAR formulary_drug_cd:VARCHAR gsn:VARCHAR ndc:VARCHAR "
            "prod_strength:VARCHAR form_rx:VARCHAR dose_val_rx:VARCHAR dose_unit_rx:VARCHAR "
            "form_val_disp:VARCHAR form_unit_disp:VARCHAR doses_per_24_hrs:REAL route:VARCHAR",
        ),
        _table(
            "hosp.emar",
            "subject_id:INTEGER hadm_id:INTEGER emar_id:VARCHAR emar_seq:INTEGER "
            "poe_id:VARCHAR pharmacy_id:INTEGER enter_provider_id:VARCHAR charttime:TIMESTAMP "
            "medication:VARCHAR event_txt:VARCHAR scheduletime:TIMESTAMP storetime:TIMESTAMP",
        ),
        _table(
            "icu.icustays",
            "subject_id:INTEGER hadm_id:INTEGER stay_id:INTEGER first_careunit:VARCHAR "
            "last_careunit:VARCHAR intime:TIMESTAMP outtime:TIMESTAMP los:DOUBLE",
        ),
        _table(
            "note.discharge",
            "note_id:VARCHAR subject_id:INTEGER hadm_id:INTEGER note_type:VARCHAR "
            "note_seq:SMALLINT charttime:TIMESTAMP storetime:TIMESTAMP text:VARCHAR",
        ),
        _table(
            "note.radiology",
            "note_id:VARCHAR subject_id:INTEGER hadm_id:INTEGER note_type:VARCHAR "
            "note_seq:SMALLINT charttime:TIMESTAMP storetime:TIMESTAMP text:VARCHAR",
        ),
    )
}
# The notes module is a separate download (MIMIC-IV-Note); the rest live under --mimic-dir.
NOTE_MODULE = "note"
