"""A synthetic MIMIC-IV + MIMIC-IV-Note extract with the official files and columns.

Clinically coherent (an admission's diagnosis comes with fitting labs, drugs, cultures, imaging
and a discharge summary that quotes them), deterministic for a seed (byte-identical gzip files),
and carrying the real data's traps: several admissions per patient, admissions without a
discharge note, radiology notes with a NULL hadm_id (inside and outside stays), labs and ED visits
without an admission, anchor_age 91, and zero-length strings in prescriptions.drug and
microbiologyevents.spec_type_desc. ``version`` picks v2.2 or v3.x spellings of admissions.language.

Patients and admissions are drawn here; what an admission writes besides its admissions row is
in ``demo_events``, how rows and files are written in ``demo_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from medstore.sources.mimic.demo_catalog import (
    ANCHOR_YEAR_GROUPS,
    COMORBIDITIES,
    CONDITIONS,
    DISCHARGE_LOCATIONS,
    INSURANCES,
    LAB_ITEMS,
    LANGUAGES,
    MARITAL,
    RACES,
    Code,
    Condition,
    LabItem,
)
from medstore.sources.mimic.demo_events import Stay, StayEvents
from medstore.sources.mimic.demo_rows import day_start, ts, write_table
from medstore.sources.mimic.schema import TABLES

VERSIONS = tuple(LANGUAGES)
ADMISSION_COUNT_WEIGHTS = (30, 25, 18, 12, 8, 5, 2)  # 1..7 admissions per patient


@dataclass
class Person:
    """A generated patient: what each of their admissions draws on."""

    subject_id: int
    gender: str
    anchor_age: int
    anchor_year: int
    real_start: int  # the real year the anchor year stands for (picks ICD-9 or ICD-10)
    profile: dict[str, Any]
    baseline: dict[str, float]
    comorbidities: list[tuple[Code, str | None]]


class DemoGenerator(StayEvents):
    def __init__(self, seed: int, version: str) -> None:
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {', '.join(VERSIONS)}")
        super().__init__(seed)
        self.version = version

    # patients -----------------------------------------------------------------------------------
    def patient(self, index: int) -> None:
        rng = self.rng
        subject_id = 10_000_000 + index * 89_113 + rng.randrange(89_000)
        gender = rng.choice("MF")
        anchor_age = 91 if rng.random() < 0.07 else rng.randint(20, 89)
        anchor_year = rng.randint(2110, 2200)
        group = rng.choice(ANCHOR_YEAR_GROUPS)
        real_start = int(group[:4]) + rng.randint(0, 2)
        comorbidities = rng.sample(COMORBIDITIES, rng.randint(1, 3))
        admissions = rng.choices(range(1, 8), weights=ADMISSION_COUNT_WEIGHTS)[0]
        profile = {
            "language": rng.choice(LANGUAGES[self.version]),
            "insurance": rng.choice(INSURANCES[self.version]),
            "race": rng.choice(RACES),
            "marital_status": rng.choice(MARITAL),
        }
        baseline = {label: self.baseline(item, comorbidities) for label, item in LAB_ITEMS.items()}
        person = Person(
            subject_id,
            gender,
            anchor_age,
            anchor_year,
            real_start,
            profile,
            baseline,
            comorbidities,
        )
        moment = datetime(anchor_year, 1, 1) + timedelta(
            days=rng.randint(0, 500), minutes=rng.randint(0, 1439)
        )
        self.before_first_stay(person, moment)
        dod = self.stays(person, moment, admissions)
        self.add(
            "hosp.patients",
            subject_id=subject_id,
            gender=gender,
            anchor_age=anchor_age,
            anchor_year=anchor_year,
            anchor_year_group=group,
            dod=dod.isoformat() if dod else None,
        )

    def before_first_stay(self, person: Person, moment: datetime) -> None:
        """Now and then, imaging or an ED visit that belongs to no admission."""
        rng = self.rng
        subject_id = person.subject_id
        if rng.random() < 0.2:  # outpatient imaging before the first stay: NULL hadm_id
            self.radiology(subject_id, None, moment - timedelta(days=30), "CHEST (PA AND LAT)",
                           "Lungs are clear. Heart size is normal.", "No acute process.",
                           person.gender, "routine screening")  # fmt: skip
        if rng.random() < 0.15:  # an ED visit that did not lead to an admission
            self.ed_visit(subject_id, moment - timedelta(days=rng.randint(40, 90)))

    def stays(self, person: Person, moment: datetime, count: int) -> date | None:
        """The patient's admissions, in order, with clinic labs between some; the date of death."""
        rng = self.rng
        condition = rng.choice(CONDITIONS)
        dod = None
        for number in range(count):
            if number and rng.random() > 0.4:
                condition = rng.choice(CONDITIONS)
            last = number == count - 1
            stay = self.admission(person, moment, condition, died=last and rng.random() < 0.08)
            if stay.died:
                dod = stay.dischtime.date()
            elif last and rng.random() < 0.05:
                dod = stay.dischtime.date() + timedelta(days=rng.randint(30, 400))
            if not last and rng.random() < 0.5:  # clinic labs between stays: NULL hadm_id
                self.lab_draw(person.subject_id, None, stay.dischtime + timedelta(days=10),
                              person.baseline, {}, 0, 1, ("Creatinine", "Hemoglobin"),
                              "ROUTINE")  # fmt: skip
            moment = stay.dischtime + timedelta(
                days=rng.randint(20, 400), minutes=rng.randint(0, 1439)
            )
        return dod

    def baseline(self, item: LabItem, comorbidities: list[tuple[Code, str | None]]) -> float:
        codes = {code.icd10 for code, _ in comorbidities}
        if item.label == "Creatinine" and "N189" in codes:
            return 1.7
        if item.label == "Glucose" and "E119" in codes:
            return 150.0
        low, high = item.low or 0.0, item.high or 0.0
        if item.label in ("NTproBNP", "Troponin T"):
            return high * self.rng.uniform(0.2, 0.6)
        return self.rng.uniform(low + 0.25 * (high - low), high - 0.25 * (high - low))

    def ed_visit(self, subject_id: int, moment: datetime) -> None:
        out = moment + timedelta(hours=self.rng.randint(3, 9))
        for eventtype, careunit, intime, outtime in (
            ("ED", "Emergency Department", moment, out),
            ("discharge", None, out, None),
        ):
            self.add(
                "hosp.transfers",
                subject_id=subject_id,
                hadm_id=None,
                transfer_id=self.unique_id(30_000_000, 39_999_999),
                eventtype=eventtype,
                careunit=careunit,
                intime=ts(intime),
                outtime=ts(outtime),
            )

    # admissions ---------------------------------------------------------------------------------
    def admission(
        self, person: Person, moment: datetime, condition: Condition, *, died: bool
    ) -> Stay:
        subject_id, comorbidities = person.subject_id, person.comorbidities
        age = person.anchor_age + moment.year - person.anchor_year
        real_year = person.real_start + moment.year - person.anchor_year
        stay = self.new_stay(moment, condition, real_year, died)
        edregtime = self.admission_row(person, stay)
        self.add(
            "hosp.services",
            subject_id=subject_id,
            hadm_id=stay.hadm_id,
            transfertime=ts(stay.admittime),
            prev_service=None,
            curr_service=condition.service,
        )
        self.transfers(subject_id, stay, edregtime)
        self.diagnoses(subject_id, stay, comorbidities)
        self.stay_labs(subject_id, stay, person.baseline, edregtime)
        self.cultures(subject_id, stay)
        self.medications(subject_id, stay, comorbidities)
        self.imaging(subject_id, stay, person.gender)
        if self.rng.random() < 0.85:
            self.discharge_notes(subject_id, stay, person.gender, age, comorbidities)
        return stay

    def new_stay(self, moment: datetime, condition: Condition, real_year: int, died: bool) -> Stay:
        """The stay's times, type and ICU time, drawn before any of its rows is written."""
        rng = self.rng
        days = rng.randint(*condition.stay_days)
        admittime = moment.replace(second=0, microsecond=0)
        dischtime = day_start(admittime) + timedelta(
            days=days - 1, hours=rng.randint(11, 18), minutes=rng.randint(0, 59)
        )
        admission_type = rng.choice(condition.admission_types)
        icu = None
        if rng.random() < condition.icu_probability:
            icu_out = admittime + timedelta(hours=rng.randint(18, 20 + 24 * (days - 2)))
            icu = (admittime, min(icu_out, dischtime - timedelta(hours=2)))
        return Stay(
            hadm_id=self.unique_id(20_000_000, 29_999_999),
            condition=condition,
            admittime=admittime,
            dischtime=dischtime,
            days=days,
            icd_version=10 if real_year >= 2016 else 9,
            died=died,
            icu=icu,
            admission_type=admission_type,
        )

    def admission_row(self, person: Person, stay: Stay) -> datetime | None:
        """The hosp.admissions row; returns the ED registration time (emergencies only)."""
        rng = self.rng
        admittime, dischtime, died = stay.admittime, stay.dischtime, stay.died
        emergency = "EMER" in stay.admission_type
        edregtime = admittime - timedelta(minutes=rng.randint(120, 480)) if emergency else None
        self.add(
            "hosp.admissions",
            subject_id=person.subject_id,
            hadm_id=stay.hadm_id,
            admittime=ts(admittime),
            dischtime=ts(dischtime),
            deathtime=ts(dischtime) if died else None,
            admission_type=stay.admission_type,
            admit_provider_id=self.provider(),
            admission_location="EMERGENCY ROOM"
            if emergency
            else rng.choice(("PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL")),
            discharge_location="DIED"
            if died
            else (None if rng.random() < 0.05 else rng.choice(DISCHARGE_LOCATIONS)),
            insurance=person.profile["insurance"],
            language=person.profile["language"],
            marital_status=person.profile["marital_status"],
            race=person.profile["race"],
            edregtime=ts(edregtime),
            edouttime=ts(admittime + timedelta(minutes=rng.randint(5, 40))) if emergency else None,
            hospital_expire_flag=int(died),
        )
        return edregtime

    # dictionaries -------------------------------------------------------------------------------
    def dictionaries(self) -> None:
        for (code, version), title in sorted(self.codes.items()):
            self.add("hosp.d_icd_diagnoses", icd_code=code, icd_version=version, long_title=title)
        for (code, version), title in sorted(self.procedure_codes.items()):
            self.add("hosp.d_icd_procedures", icd_code=code, icd_version=version, long_title=title)
        for item in sorted(LAB_ITEMS.values(), key=lambda i: i.itemid):
            self.add(
                "hosp.d_labitems",
                itemid=item.itemid,
                label=item.label,
                fluid=item.fluid,
                category=item.category,
            )


def make_demo(
    out: str | Path, *, patients: int = 100, seed: int = 0, version: str = "3.1"
) -> dict[str, int]:
    """Write the demo under ``out`` (hosp/, icu/, note/); returns the row count of each table."""
    generator = DemoGenerator(seed, version)
    for index in range(patients):
        generator.patient(index)
    generator.dictionaries()
    counts = {}
    for name, table in TABLES.items():
        rows = generator.rows[name]
        write_table(Path(out) / table.file, table.column_names, rows)
        counts[name] = len(rows)
    return counts
