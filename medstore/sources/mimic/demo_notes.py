"""Note texts for the synthetic demo, in the shape of MIMIC-IV-Note: de-identified spans as ___,
section headers as in real discharge summaries and radiology reports, and facts (labs, drugs,
cultures, imaging) taken from the same generated stay, so the notes agree with the tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medstore.sources.mimic.demo_catalog import LAB_ITEMS, Code

if TYPE_CHECKING:
    from medstore.sources.mimic.demo_events import Stay

SERVICE_NAMES = {"MED": "MEDICINE", "CMED": "MEDICINE", "ORTHO": "ORTHOPAEDICS"}
FREQUENCIES = {1: "DAILY", 2: "BID", 3: "TID", 4: "Q6H"}


def radiology_text(exam: str, findings: str, impression: str, gender: str, indication: str) -> str:
    person = "woman" if gender == "F" else "man"
    return (
        f"EXAMINATION:  {exam}\n\n"
        f"INDICATION:  ___ year old {person} with {indication}.  // Evaluate.\n\n"
        "TECHNIQUE:  Standard views were obtained.\n\n"
        "COMPARISON:  ___\n\n"
        f"FINDINGS: \n\n{findings}\n\n"
        f"IMPRESSION: \n\n{impression}\n"
    )


def lab_phrase(label: str, value: float) -> str:
    item = LAB_ITEMS[label]
    unit = f" {item.unit}" if item.unit and item.unit != "units" else ""
    return f"{label} {value:.{item.decimals}f}{unit}"


def pertinent_results(stay: Stay) -> list[str]:
    """The "Pertinent Results" lines: admission labs, imaging, cultures, discharge labs."""
    condition = stay.condition
    admission_labs = [
        lab_phrase(label, values[0][1])
        for label, values in stay.labs.items()
        if label in condition.labs and values
    ]
    discharge_labs = [
        lab_phrase(label, values[-1][1])
        for label, values in stay.labs.items()
        if label in condition.labs and values
    ]
    results = [f"ADMISSION LABS: {', '.join(admission_labs)}"] if admission_labs else []
    for study in condition.imaging:
        results.append(f"IMAGING: {study.exam}: {study.impression}")
    for culture in condition.cultures:
        growth = culture.org_name or "no growth"
        resistant = [name for _, name, _, interp in culture.susceptibilities if interp == "R"]
        sensitive = [name for _, name, _, interp in culture.susceptibilities if interp == "S"]
        detail = f" (sensitive to {', '.join(sensitive)}" if sensitive else ""
        detail += (
            f"; resistant to {', '.join(resistant)})" if resistant else (")" if detail else "")
        )
        results.append(f"MICROBIOLOGY: {culture.spec_type_desc}: {growth}{detail}")
    if discharge_labs and not stay.died:
        results.append(f"DISCHARGE LABS: {', '.join(discharge_labs)}")
    return results


def hospital_course(stay: Stay, title: str, pronoun: str) -> tuple[str, str, str]:
    """(brief hospital course, discharge medications, disposition) of the stay."""
    course = f"{title} ___ {stay.condition.course}."
    if stay.icu:
        hours = round((stay.icu[1] - stay.icu[0]).total_seconds() / 3600)
        course += f" {pronoun} spent the first {hours} hours in the MICU."
    if stay.died:
        course += (
            f" Despite treatment {pronoun.lower()} deteriorated; after a family meeting care was "
            f"focused on comfort and {pronoun.lower()} died on hospital day {stay.days}."
        )
        return course, "None", "Expired"
    medications = "\n".join(
        f"{number}. {drug.drug} {drug.dose} {drug.unit} {drug.route} "
        f"{FREQUENCIES.get(drug.per_day, 'DAILY')}"
        for number, drug in enumerate(
            (d for d in stay.drugs if not d.route.startswith("IV")), start=1
        )
    )
    return course, medications, "Home"


def discharge_text(stay: Stay, gender: str, age: int, comorbidities: list[Code]) -> str:
    """A discharge summary in MIMIC-IV-Note's section layout (most of it one template)."""
    condition = stay.condition
    person, title, pronoun = ("woman", "Ms.", "She") if gender == "F" else ("man", "Mr.", "He")
    history = ", ".join(code.icd10_title.split(",")[0].lower() for code in comorbidities)
    procedures = "\n".join(f"- {code.icd10_title}" for code in stay.procedures) or "None"
    results = pertinent_results(stay)
    course, medications, disposition = hospital_course(stay, title, pronoun)
    age_text = "___" if age > 89 else str(age)
    secondary = "\n".join(code.icd10_title for code in comorbidities)
    return (
        " \nName:  ___                     Unit No:   ___\n \n"
        "Admission Date:  ___              Discharge Date:   ___\n \n"
        f"Date of Birth:  ___             Sex:   {gender}\n \n"
        f"Service: {SERVICE_NAMES.get(condition.service, 'MEDICINE')}\n \n"
        "Allergies: \nNo Known Allergies / Adverse Drug Reactions\n \n"
        "Attending: ___.\n \n"
        f"Chief Complaint:\n{condition.complaint}\n \n"
        f"Major Surgical or Invasive Procedure:\n{procedures}\n \n"
        "History of Present Illness:\n"
        f"___ is a {age_text} year old {person} with {history} who {condition.hpi}.\n \n"
        f"Pertinent Results:\n{chr(10).join(results) or 'None'}\n \n"
        f"Brief Hospital Course:\n{course}\n \n"
        f"Discharge Medications:\n{medications or 'None'}\n \n"
        f"Discharge Disposition:\n{disposition}\n \n"
        f"Discharge Diagnosis:\nPrimary: {condition.words}\nSecondary:\n{secondary}\n \n"
        "Discharge Condition:\nMental Status: Clear and coherent.\n"
        "Level of Consciousness: Alert and interactive.\n \n"
        "Discharge Instructions:\n"
        f"Dear {title} ___,\nYou were admitted to the hospital for {condition.words}. "
        f"{condition.instructions}\n \n"
        "Followup Instructions:\n___\n"
    )
