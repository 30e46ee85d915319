"""What one generated admission writes besides its admissions row: transfers and ICU stays,
billed codes, daily labs, cultures, prescriptions with their eMAR, imaging and notes.

Each method draws from the generator's ``rng`` in the same order the tables are written, so a
seed still gives byte-identical files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from medstore.sources.mimic.demo_catalog import (
    DAILY_PANEL,
    DRUGS,
    LAB_ITEMS,
    Code,
    Condition,
    Drug,
)
from medstore.sources.mimic.demo_notes import discharge_text, radiology_text
from medstore.sources.mimic.demo_rows import EMPTY, RowWriter, day_start, ts

MICU = "Medical Intensive Care Unit (MICU)"


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
    admission_type: str
    labs: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    drugs: list[Drug] = field(default_factory=list)
    procedures: list[Code] = field(default_factory=list)


class StayEvents(RowWriter):
    """The per-admission tables, and the code dictionaries they fill as they go."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.codes: dict[tuple[str, int], str] = {}
        self.procedure_codes: dict[tuple[str, int], str] = {}
        self.labevent_id = 0
        self.microevent_id = 0
        self.note_seq: Counter[tuple[int, str]] = Counter()

    # transfers and codes ------------------------------------------------------------------------
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
