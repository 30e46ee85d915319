"""A synthetic MIMIC-IV + MIMIC-IV-Note extract with the official files and columns.

Clinically coherent (an admission's diagnosis comes with fitting labs, drugs, cultures, imaging
and a discharge summary that quotes them), deterministic for a seed (byte-identical gzip files),
and carrying the real data's traps: several admissions per patient, admissions without a
discharge note, radiology notes with a NULL hadm_id (inside and outside stays), labs and ED visits
without an admission, anchor_age 91, and zero-length strings in prescriptions.drug and
microbiologyevents.spec_type_desc. ``version`` picks v2.2 or v3.x spellings of admissions.language.
"""

from __future__ import annotations

import gzip
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from medstore.sources.mimic.demo_catalog import (
    ANCHOR_YEAR_GROUPS,
    COMORBIDITIES,
    CONDITIONS,
    DAILY_PANEL,
    DISCHARGE_LOCATIONS,
    DRUGS,
    INSURANCES,
    LAB_ITEMS,
    LANGUAGES,
    MARITAL,
    RACES,
    Code,
    Condition,
    Drug,
    LabItem,
)
from medstore.sources.mimic.demo_notes import discharge_text, radiology_text
from medstore.sources.mimic.schema import TABLES

VERSIONS = tuple(LANGUAGES)
ADMISSION_COUNT_WEIGHTS = (30, 25, 18, 12, 8, 5, 2)  # 1..7 admissions per patient
MICU = "Medical Intensive Care Unit (MICU)"


class Empty:
    """A zero-length string written as ``""`` (the real files have them where NULL is expected)."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = Empty()


def ts(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def day_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day)


@dataclass
class Stay:
    """One admission as generated, for the tables and the notes that describe it."""

    hadm_id: int
    condition: Condition
    admittime: datetime
    dischtime: datetime
    days: int
    icd_version: int
    died: bool
    icu: tuple[datetime, datetime] | None
    labs: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    drugs: list[Drug] = field(default_factory=list)
    procedures: list[Code] = field(default_factory=list)


class DemoGenerator:
    def __init__(self, seed: int, version: str) -> None:
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {', '.join(VERSIONS)}")
        self.rng = random.Random(seed)
        self.version = version
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.used_ids: set[int] = set()
        self.codes: dict[tuple[str, int], str] = {}
        self.procedure_codes: dict[tuple[str, int], str] = {}
        self.labevent_id = 0
        self.microevent_id = 0
        self.note_seq: Counter[tuple[int, str]] = Counter()

    # ids ----------------------------------------------------------------------------------------
    def unique_id(self, low: int, high: int) -> int:
        while True:
            value = self.rng.randint(low, high)
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def provider(self) -> str:
        return "P" + "".join(self.rng.choices("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", k=5))

    def add(self, table: str, **row: Any) -> None:
        self.rows[table].append(row)

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
        moment = datetime(anchor_year, 1, 1) + timedelta(
            days=rng.randint(0, 500), minutes=rng.randint(0, 1439)
        )
        if rng.random() < 0.2:  # outpatient imaging before the first stay: NULL hadm_id
            self.radiology(subject_id, None, moment - timedelta(days=30), "CHEST (PA AND LAT)",
                           "Lungs are clear. Heart size is normal.", "No acute process.",
                           gender, "routine screening")  # fmt: skip
        if rng.random() < 0.15:  # an ED visit that did not lead to an admission
            self.ed_visit(subject_id, moment - timedelta(days=rng.randint(40, 90)))
        condition = rng.choice(CONDITIONS)
        dod = None
        for number in range(admissions):
            if number and rng.random() > 0.4:
                condition = rng.choice(CONDITIONS)
            last = number == admissions - 1
            real_year = real_start + moment.year - anchor_year
            stay = self.admission(
                subject_id, moment, condition, profile, baseline, comorbidities,
                gender, anchor_age + moment.year - anchor_year, real_year,
                died=last and rng.random() < 0.08,
            )  # fmt: skip
            if stay.died:
                dod = stay.dischtime.date()
            elif last and rng.random() < 0.05:
                dod = stay.dischtime.date() + timedelta(days=rng.randint(30, 400))
            if not last and rng.random() < 0.5:  # clinic labs between stays: NULL hadm_id
                self.lab_draw(subject_id, None, stay.dischtime + timedelta(days=10), baseline,
                              {}, 0, 1, ("Creatinine", "Hemoglobin"), "ROUTINE")  # fmt: skip
            moment = stay.dischtime + timedelta(
                days=rng.randint(20, 400), minutes=rng.randint(0, 1439)
            )
        self.add(
            "hosp.patients",
            subject_id=subject_id,
            gender=gender,
            anchor_age=anchor_age,
            anchor_year=anchor_year,
            anchor_year_group=group,
            dod=dod.isoformat() if dod else None,
        )

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
        self,
        subject_id: int,
        moment: datetime,
        condition: Condition,
        profile: dict[str, Any],
        baseline: dict[str, float],
        comorbidities: list[tuple[Code, str | None]],
        gender: str,
        age: int,
        real_year: int,
        *,
        died: bool,
    ) -> Stay:
        rng = self.rng
        days = rng.randint(*condition.stay_days)
        admittime = moment.replace(second=0, microsecond=0)
        dischtime = day_start(admittime) + timedelta(
            days=days - 1, hours=rng.randint(11, 18), minutes=rng.randint(0, 59)
        )
        admission_type = rng.choice(condition.admission_types)
        emergency = "EMER" in admission_type
        icu = None
        if rng.random() < condition.icu_probability:
            icu_out = admittime + timedelta(hours=rng.randint(18, 20 + 24 * (days - 2)))
            icu = (admittime, min(icu_out, dischtime - timedelta(hours=2)))
        stay = Stay(
            hadm_id=self.unique_id(20_000_000, 29_999_999),
            condition=condition,
            admittime=admittime,
            dischtime=dischtime,
            days=days,
            icd_version=10 if real_year >= 2016 else 9,
            died=died,
            icu=icu,
        )
        edregtime = admittime - timedelta(minutes=rng.randint(120, 480)) if emergency else None
        self.add(
            "hosp.admissions",
            subject_id=subject_id,
            hadm_id=stay.hadm_id,
            admittime=ts(admittime),
            dischtime=ts(dischtime),
            deathtime=ts(dischtime) if died else None,
            admission_type=admission_type,
            admit_provider_id=self.provider(),
            admission_location="EMERGENCY ROOM"
            if emergency
            else rng.choice(("PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL")),
            discharge_location="DIED"
            if died
            else (None if rng.random() < 0.05 else rng.choice(DISCHARGE_LOCATIONS)),
            insurance=profile["insurance"],
            language=profile["language"],
            marital_status=profile["marital_status"],
            race=profile["race"],
            edregtime=ts(edregtime),
            edouttime=ts(admittime + timedelta(minutes=rng.randint(5, 40))) if emergency else None,
            hospital_expire_flag=int(died),
        )
        self.add(
            "hosp.services",
            subject_id=subject_id,
            hadm_id=stay.hadm_id,
            transfertime=ts(admittime),
            prev_service=None,
            curr_service=condition.service,
        )
        self.transfers(subject_id, stay, edregtime)
        self.diagnoses(subject_id, stay, comorbidities)
        self.stay_labs(subject_id, stay, baseline, edregtime)
        self.cultures(subject_id, stay)
        self.medications(subject_id, stay, comorbidities)
        self.imaging(subject_id, stay, gender)
        if rng.random() < 0.85:
            self.discharge_notes(subject_id, stay, gender, age, comorbidities)
        return stay

    def transfers(self, subject_id: int, stay: Stay, edregtime: datetime | None) -> None:
        ward = stay.condition.ward
        moves: list[tuple[str, str | None, datetime, datetime | None]] = []
        if edregtime:
            moves.append(("ED", "Emergency Department", edregtime, stay.admittime))
        if stay.icu:
            icu_in, icu_out = stay.icu
            moves.append(("admit", MICU, icu_in, icu_out))
            moves.append(("transfer", ward, icu_out, stay.dischtime))
            self.add(
                "icu.icustays",
                subject_id=subject_id,
                hadm_id=stay.hadm_id,
                stay_id=self.unique_id(30_000_000, 39_999_999),
                first_careunit=MICU,
                last_careunit=MICU,
                intime=ts(icu_in),
                outtime=ts(icu_out),
                los=f"{(icu_out - icu_in).total_seconds() / 86400:.6f}",
            )
        else:
            moves.append(("admit", ward, stay.admittime, stay.dischtime))
        moves.append(("discharge", None, stay.dischtime, None))
        for eventtype, careunit, intime, outtime in moves:
            self.add(
                "hosp.transfers",
                subject_id=subject_id,
                hadm_id=stay.hadm_id,
                transfer_id=self.unique_id(30_000_000, 39_999_999),
                eventtype=eventtype,
                careunit=careunit,
                intime=ts(intime),
                outtime=ts(outtime),
            )

    def diagnoses(
        self, subject_id: int, stay: Stay, comorbidities: list[tuple[Code, str | None]]
    ) -> None:
        codes = [*stay.condition.diagnoses, *(code for code, _ in comorbidities)]
        for seq_num, code in enumerate(codes, start=1):
            icd_code, title = self.icd(code, stay.icd_version)
            self.codes[(icd_code, stay.icd_version)] = title
            self.add(
                "hosp.diagnoses_icd",
                subject_id=subject_id,
                hadm_id=stay.hadm_id,
                seq_num=seq_num,
                icd_code=icd_code,
                icd_version=stay.icd_version,
            )
        for seq_num, code in enumerate(stay.condition.procedures, start=1):
            icd_code, title = self.icd(code, stay.icd_version)
            self.procedure_codes[(icd_code, stay.icd_version)] = title
            stay.procedures.append(code)
            chartdate = (stay.admittime + timedelta(days=min(seq_num, stay.days - 1))).date()
            self.add(
                "hosp.procedures_icd",
                subject_id=subject_id,
                hadm_id=stay.hadm_id,
                seq_num=seq_num,
                chartdate=chartdate.isoformat(),
                icd_code=icd_code,
                icd_version=stay.icd_version,
            )

    @staticmethod
    def icd(code: Code, version: int) -> tuple[str, str]:
        return (code.icd10, code.icd10_title) if version == 10 else (code.icd9, code.icd9_title)

    # labs and cultures --------------------------------------------------------------------------
    def stay_labs(
        self, subject_id: int, stay: Stay, baseline: dict[str, float], edregtime: datetime | None
    ) -> None:
        tests = (*DAILY_PANEL, *(t for t in stay.condition.labs if t not in DAILY_PANEL))
        first = (edregtime or stay.admittime) + timedelta(minutes=self.rng.randint(20, 60))
        for day in range(stay.days):
            moment = (
                first
                if day == 0
                else day_start(stay.admittime)
                + timedelta(days=day, hours=5, minutes=self.rng.randint(0, 50))
            )
            if moment >= stay.dischtime:
                break
            drawn = self.lab_draw(
                subject_id, stay.hadm_id, moment, baseline, stay.condition.labs, day,
                stay.days, tests, "STAT" if day == 0 else "ROUTINE",
            )  # fmt: skip
            for label, value in drawn.items():
                stay.labs.setdefault(label, []).append((moment, value))

    def lab_draw(
        self,
        subject_id: int,
        hadm_id: int | None,
        moment: datetime,
        baseline: dict[str, float],
        course: dict[str, tuple[float, float]],
        day: int,
        days: int,
        tests: tuple[str, ...],
        priority: str,
    ) -> dict[str, float]:
        rng = self.rng
        specimen_id = self.unique_id(1_000_000, 99_999_999)
        drawn = {}
        for label in tests:
            item = LAB_ITEMS[label]
            if label in course:
                start, end = course[label]
                value = start + (end - start) * (day / max(1, days - 1))
                value += rng.gauss(0, abs(end - start) * 0.05)
            else:
                value = baseline[label] * rng.uniform(0.95, 1.05)
            value = round(max(value, 0.0), item.decimals)
            abnormal = (item.low is not None and value < item.low) or (
                item.high is not None and value > item.high
            )
            self.labevent_id += rng.randint(1, 40)
            self.add(
                "hosp.labevents",
                labevent_id=self.labevent_id,
                subject_id=subject_id,
                hadm_id=hadm_id,
                specimen_id=specimen_id,
                itemid=item.itemid,
                order_provider_id=self.provider() if rng.random() < 0.3 else None,
                charttime=ts(moment),
                storetime=ts(moment + timedelta(minutes=rng.randint(40, 150))),
                value=f"{value:.{item.decimals}f}",
                valuenum=f"{value:.{item.decimals}f}",
                valueuom=item.unit,
                ref_range_lower=item.low,
                ref_range_upper=item.high,
                flag="abnormal" if abnormal else None,
                priority=priority,
                comments="___" if rng.random() < 0.03 else None,
            )
            drawn[label] = value
        return drawn

    def cultures(self, subject_id: int, stay: Stay) -> None:
        rng = self.rng
        for culture in stay.condition.cultures:
            charttime = stay.admittime + timedelta(minutes=rng.randint(10, 90))
            specimen = self.unique_id(1_000_000, 99_999_999)
            spec_type = EMPTY if rng.random() < 0.05 else culture.spec_type_desc
            results = culture.susceptibilities or ((None, None, None, None),)
            for ab_itemid, ab_name, dilution, interpretation in results:
                self.microevent_id += rng.randint(1, 30)
                comparison = next(
                    (c for c in ("<=", ">=", "=") if (dilution or "").startswith(c)), None
                )
                self.add(
                    "hosp.microbiologyevents",
                    microevent_id=self.microevent_id,
                    subject_id=subject_id,
                    hadm_id=stay.hadm_id,
                    micro_specimen_id=specimen,
                    order_provider_id=None,
                    chartdate=ts(day_start(charttime)),
                    charttime=ts(charttime),
                    spec_itemid=culture.spec_itemid,
                    spec_type_desc=spec_type,
                    test_seq=1,
                    storedate=ts(day_start(charttime) + timedelta(days=2)),
                    storetime=ts(charttime + timedelta(days=2, hours=3)),
                    test_itemid=culture.test_itemid,
                    test_name=culture.test_name,
                    org_itemid=culture.org_itemid,
                    org_name=culture.org_name,
                    isolate_num=1 if culture.org_name else None,
                    quantity=None,
                    ab_itemid=ab_itemid,
                    ab_name=ab_name,
                    dilution_text=dilution,
                    dilution_comparison=f"{comparison}        " if comparison else None,
                    dilution_value=dilution.lstrip("<>=") if dilution else None,
                    interpretation=interpretation,
                    comments=None if culture.org_name else "NO GROWTH.",
                )

    # medications --------------------------------------------------------------------------------
    def medications(
        self, subject_id: int, stay: Stay, comorbidities: list[tuple[Code, str | None]]
    ) -> None:
        rng = self.rng
        names = [*stay.condition.drugs, *(drug for _, drug in comorbidities if drug)]
        for poe_seq, name in enumerate(dict.fromkeys(names), start=1):
            drug = DRUGS[name]
            stay.drugs.append(drug)
            start = stay.admittime + timedelta(hours=rng.randint(1, 4))
            stop = stay.dischtime
            if drug.route.startswith("IV") and name in stay.condition.drugs:
                stop = min(stop, start + timedelta(days=max(1, round(stay.days * 0.6))))
            pharmacy_id = self.unique_id(1_000_000, 99_999_999)
            poe_id = f"{subject_id}-{rng.randint(100, 9999)}"
            self.add(
                "hosp.prescriptions",
                subject_id=subject_id,
                hadm_id=stay.hadm_id,
                pharmacy_id=pharmacy_id,
                poe_id=poe_id,
                poe_seq=poe_seq,
                order_provider_id=self.provider(),
                starttime=ts(start),
                stoptime=ts(stop),
                drug_type=drug.drug_type,
                drug=EMPTY if rng.random() < 0.02 else drug.drug,
                formulary_drug_cd=drug.formulary_cd,
                gsn=drug.gsn,
                ndc=drug.ndc,
                prod_strength=drug.strength,
                form_rx=None,
                dose_val_rx=drug.dose,
                dose_unit_rx=drug.unit,
                form_val_disp=drug.form_val,
                form_unit_disp=drug.form_unit,
                doses_per_24_hrs=drug.per_day or None,
                route=drug.route,
            )
            self.administrations(subject_id, stay, drug, poe_id, pharmacy_id, start, stop)

    def administrations(
        self,
        subject_id: int,
        stay: Stay,
        drug: Drug,
        poe_id: str,
        pharmacy_id: int,
        start: datetime,
        stop: datetime,
    ) -> None:
        rng = self.rng
        if drug.per_day == 0:  # an infusion: started, then stopped
            moments = [(start, "Started"), (stop - timedelta(hours=1), "Stopped")]
        else:
            step = timedelta(hours=24 / drug.per_day)
            moments, moment = [], start + timedelta(minutes=30)
            while moment < stop:
                roll = rng.random()
                moments.append((moment, "Not Given" if roll < 0.05 else "Administered"))
                moment += step
        for moment, event in moments:
            self.add(
                "hosp.emar",
                subject_id=subject_id,
                hadm_id=stay.hadm_id,
                emar_id=f"{subject_id}-{self.unique_id(10_000, 9_999_999)}",
                emar_seq=rng.randint(1, 999),
                poe_id=poe_id,
                pharmacy_id=pharmacy_id,
                enter_provider_id=None,
                charttime=ts(moment),
                medication=drug.emar_name,
                event_txt=event,
                scheduletime=ts(moment.replace(minute=0)),
                storetime=ts(moment + timedelta(minutes=rng.randint(1, 15))),
            )

    # notes --------------------------------------------------------------------------------------
    def imaging(self, subject_id: int, stay: Stay, gender: str) -> None:
        rng = self.rng
        for study in stay.condition.imaging:
            moment = stay.admittime + timedelta(minutes=rng.randint(60, 240))
            self.radiology(subject_id, stay.hadm_id, moment, study.exam, study.findings,
                           study.impression, gender, stay.condition.complaint.lower())  # fmt: skip
        if stay.days >= 3 and rng.random() < 0.35:  # a follow-up film never linked to the stay
            moment = day_start(stay.admittime) + timedelta(
                days=rng.randint(1, stay.days - 2), hours=rng.randint(7, 11)
            )
            self.radiology(subject_id, None, moment, "CHEST (PORTABLE AP)",
                           "Interval improvement compared with the admission study. No new "
                           "consolidation or effusion.", "Improving.", gender,
                           f"follow-up of {stay.condition.words}")  # fmt: skip

    def radiology(
        self,
        subject_id: int,
        hadm_id: int | None,
        moment: datetime,
        exam: str,
        findings: str,
        impression: str,
        gender: str,
        indication: str,
    ) -> None:
        self.note_seq[(subject_id, "RR")] += 1
        seq = self.note_seq[(subject_id, "RR")]
        self.add(
            "note.radiology",
            note_id=f"{subject_id}-RR-{seq}",
            subject_id=subject_id,
            hadm_id=hadm_id,
            note_type="RR",
            note_seq=seq,
            charttime=ts(moment),
            storetime=ts(moment + timedelta(minutes=self.rng.randint(30, 180))),
            text=radiology_text(exam, findings, impression, gender, indication),
        )

    def discharge_notes(
        self,
        subject_id: int,
        stay: Stay,
        gender: str,
        age: int,
        comorbidities: list[tuple[Code, str | None]],
    ) -> None:
        self.note_seq[(subject_id, "DS")] += 1
        seq = self.note_seq[(subject_id, "DS")]
        text = discharge_text(stay, gender, age, [code for code, _ in comorbidities])
        self.add(
            "note.discharge",
            note_id=f"{subject_id}-DS-{seq}",
            subject_id=subject_id,
            hadm_id=stay.hadm_id,
            note_type="DS",
            note_seq=seq,
            charttime=ts(day_start(stay.dischtime)),
            storetime=ts(stay.dischtime + timedelta(hours=self.rng.randint(2, 30))),
            text=text,
        )

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


def csv_field(value: Any) -> str:
    if value is None:
        return ""
    if value is EMPTY:
        return '""'
    text = str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_table(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """A gzip CSV whose bytes depend only on the rows (no timestamp or name in its header)."""
    lines = [",".join(columns)]
    lines += [",".join(csv_field(row.get(name)) for name in columns) for row in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as packed:
        packed.write(data)
    os.replace(partial, path)


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
