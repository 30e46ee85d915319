"""Varied consult samples for the gate benchmark: no two samples alike, as a teacher writes them.

Each good sample draws its patient (name, age, sex, complaint, lists, vital sign numbers), its
dialogue (8-14 alternating turns picked from pools and filled with numbers and body parts), its
reasoning (sentences shuffled and filled with the sample's diagnoses) and its differentials
(2-5 labelled matching diagnosis/code pairs of ``tests/data/icd_match_pairs.csv``) at random,
so long texts (turns, reasoning, rationales, social history) are unique and only what a real
teacher repeats (short list items such as "hypertension", the common diagnoses) repeats across
samples. Junk samples are the embedded model's shapes (``""``, ``"]]"``, ``"N/A"``, one
differential four times with a code that does not match) with a different looped sentence each.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAIRS = REPO / "tests" / "data" / "icd_match_pairs.csv"

NAMES = [
    "Alex",
    "Sam",
    "Maria",
    "Chen",
    "Amina",
    "Oleg",
    "Priya",
    "Tom",
    "Lucia",
    "Kofi",
    "Ines",
    "Jonas",
    "Mei",
    "Omar",
    "Sara",
    "Pedro",
]
SURNAMES = [
    "K.",
    "L.",
    "M.",
    "Novak",
    "Haddad",
    "Silva",
    "Okafor",
    "Berg",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Ahmed",
]
COMPLAINTS = (
    "I have had chest pain for {n} hours",
    "My head has been pounding for {n} days",
    "I get short of breath climbing {n} stairs",
    "My tummy has hurt since {n} o'clock last night",
    "I fainted twice in the last {n} days",
    "I keep coughing up phlegm for {n} weeks now",
    "My {part} is swollen and red since {n} days",
    "I feel low and cannot sleep for {n} weeks",
)
SYMPTOMS = (
    "central chest pressure for {n} hours",
    "sweating",
    "nausea",
    "headache worse in the morning",
    "fever up to 38.{n} C",
    "productive cough for {n} days",
    "pain in the {part}",
    "palpitations",
    "dizziness on standing",
    "vomiting {n} times today",
    "shortness of breath",
    "fatigue for {n} weeks",
    "swelling of the {part}",
    "poor appetite",
    "weight loss of {n} kg",
)
HISTORY = (
    "hypertension",
    "type 2 diabetes",
    "asthma",
    "hypothyroidism",
    "migraine",
    "previous appendectomy",
    "depression",
    "atrial fibrillation",
    "chronic kidney disease stage {n}",
)
MEDICATIONS = (
    "amlodipine {n} mg daily",
    "metformin 500 mg twice daily",
    "salbutamol inhaler as needed",
    "levothyroxine {n}0 micrograms daily",
    "ramipril {n} mg daily",
    "apixaban 5 mg twice daily",
    "sertraline {n}0 mg daily",
    "atorvastatin {n}0 mg at night",
)
ALLERGIES = ("penicillin", "latex", "sulfonamides", "ibuprofen", "shellfish")
RISKS = ("smoker", "obesity", "family history of heart disease", "sedentary job", "alcohol use")
JOBS = ("a driver", "a teacher", "a nurse", "a farmer", "an accountant", "a cook", "a builder")
PARTS = ("left leg", "right arm", "left knee", "right ankle", "lower back", "neck", "left hand")
DOCTOR = (
    "What brings you in today, {who}?",
    "When did the {symptom} start, {who}, and has it changed since?",
    "Does it spread anywhere, for example to your {part}?",
    "On a scale from one to ten, how bad is it right now, {who}?",
    "Have you had anything like this before, say in the last {n} years?",
    "Which medicines do you take, and did you take them today at {m} past?",
    "Do you smoke or drink alcohol, {who}, and how much in a week?",
    "Is anyone in your family known to have heart or lung problems?",
    "Have you noticed any fever, chills or night sweats in {n} days?",
    "I would like to examine you, {who}, and check your {part} now.",
    "We will do an ECG and blood tests within {m} minutes.",
    "Your results suggest we should keep you here for {n} hours, {who}.",
    "Do you have any allergies to medicines, {who}?",
    "Has the {symptom} woken you up at night, {who}?",
)
PATIENT = (
    "It started about {n} hours ago, at {m} past, while I was at work.",
    "A pressing feeling, it goes down to my {part} sometimes.",
    "Maybe a {n} out of ten, it comes and goes every {m} minutes.",
    "No, never like this, although my father had something similar at {m}.",
    "Only my blood pressure tablets, I took them at {n}:{m} this morning.",
    "I smoke about {m} cigarettes a day and drink at weekends.",
    "My mother had a stroke when she was {m}, doctor.",
    "I felt hot last night, about {n} times, but did not measure it.",
    "Yes, the {symptom} woke me at three in the morning.",
    "I am allergic to penicillin, it gave me a rash {m} years ago.",
    "Is it something serious, should I be worried about my {part}?",
    "Okay, can my wife come in and sit with me for {m} minutes?",
    "I have not eaten for {n} hours, since breakfast, is that a problem?",
    "It gets worse when I walk more than {m}0 metres.",
)
REASONING = (
    "The patient presents with {symptom} and a history of {history}.",
    "The leading diagnosis is {first}, given the timing over {n} hours and the risk factors.",
    "The differential includes {others}.",
    "Vital signs show a heart rate of {hr} per minute and a blood pressure of {bp}.",
    "Examination of the {part} is needed to exclude a local cause.",
    "An ECG, a full blood count and renal function should be obtained early.",
    "If the first tests are normal, repeat them after {n} hours before discharge.",
    "Red flags such as hypotension or new confusion would change the plan at once.",
    "Treatment should start with analgesia and close observation while results are pending.",
    "The patient's medications, including {medication}, must be reviewed for interactions.",
    "Social factors matter here: the patient works as {job} and lives {n} miles away.",
    "Safety-netting advice must be explicit about when to return to the department.",
)
RATIONALES = (
    "Typical presentation with {symptom} for {m} hours",
    "Fits the {n}-hour history and the risk factors",
    "Less likely at {m} years but must not be missed",
    "Would explain the {symptom} and the vital signs",
    "Possible if the first {n} tests are normal",
    "Common at {m} years; examination of the {part} will tell",
)
INVESTIGATIONS = (
    "12-lead ECG",
    "serial high-sensitivity troponin",
    "chest X-ray",
    "full blood count",
    "renal function and electrolytes",
    "D-dimer",
    "CT head",
    "urine dipstick",
    "blood cultures",
    "abdominal ultrasound",
)
TREATMENTS = (
    "aspirin 300 mg chewed",
    "paracetamol 1 g every {n} hours",
    "cardiology review",
    "continuous monitoring",
    "intravenous fluids 500 ml over {n}0 minutes",
    "oxygen to keep saturation above 94%",
    "antibiotics as per local guideline",
    "review in {n} days",
)
FLAGS = ("hypotension", "new arrhythmia", "confusion", "rising lactate", "worsening pain")
RISK_FACTORS = ("ongoing chest pain", "smoker", "age over {n}0", "diabetes", "recent surgery")
LOOPS = (
    "The patient is fine and the plan is fine.",
    "Take the medicine and rest at home.",
    "The doctor said that the patient should see the doctor.",
    "Pain pain pain in the chest again.",
    "We will monitor and reassess the situation.",
)
JUNK_STRINGS = ("", "]]", "}", "N/A", "string", "...", "none")


def diagnosis_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The labelled (diagnosis, code) pairs: matching ones, and mismatched ones."""
    with PAIRS.open(encoding="utf-8") as lines:
        rows = list(csv.DictReader(lines))
    good = [(row["diagnosis"], row["code"]) for row in rows if row["match"] == "1"]
    bad = [(row["diagnosis"], row["code"]) for row in rows if row["match"] == "0"]
    return good, bad


def fill(rng: random.Random, template: str, **slots: str) -> str:
    values = {
        "n": str(rng.randint(2, 9)),
        "part": rng.choice(PARTS),
        "symptom": rng.choice(("pain", "cough", "pressure", "dizziness", "breathlessness")),
        "m": str(rng.randint(10, 99)),
        "who": f"{rng.choice(('Mr', 'Ms', 'Dr'))} {rng.choice(SURNAMES)} {rng.choice(NAMES)}",
    }
    values.update(slots)
    return template.format(**values)


def pick(rng: random.Random, pool: tuple[str, ...], low: int, high: int) -> list[str]:
    return [fill(rng, item) for item in rng.sample(pool, rng.randint(low, high))]


def good_profile(rng: random.Random, age: int, sex: str) -> dict:
    return {
        "name": f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}",
        "age": age,
        "sex": sex,
        "chief_complaint": fill(rng, rng.choice(COMPLAINTS)),
        "symptoms": pick(rng, SYMPTOMS, 2, 5),
        "past_medical_history": pick(rng, HISTORY, 0, 3),
        "medications": pick(rng, MEDICATIONS, 0, 3),
        "allergies": pick(rng, ALLERGIES, 0, 2),
        "risk_factors": pick(rng, RISKS, 1, 3),
        "social_history": f"Works as {rng.choice(JOBS)}, smokes {rng.randint(0, 30)} cigarettes "
        f"a day and drinks {rng.randint(0, 20)} units a week. Lives with "
        f"{rng.choice(('a partner', 'two children', 'a parent', 'no one'))}.",
        "vital_signs": {
            "heart_rate": f"{rng.randint(55, 130)}/min",
            "blood_pressure": f"{rng.randint(100, 180)}/{rng.randint(55, 95)} mm Hg",
            "respiratory_rate": f"{rng.randint(12, 28)}/min",
            "temperature": f"{rng.randint(360, 395) / 10} C",
            "oxygen_saturation": f"{rng.randint(90, 100)}%",
        },
    }


def good_dialogue(rng: random.Random) -> dict:
    pairs = rng.randint(4, 7)
    doctor = [DOCTOR[0], *rng.sample(DOCTOR[1:], pairs - 1)]
    patient = rng.sample(PATIENT, pairs)
    turns = []
    for question, answer in zip(doctor, patient, strict=True):
        turns.append({"speaker": "doctor", "text": fill(rng, question)})
        turns.append({"speaker": "patient", "text": fill(rng, answer)})
    return {"turns": turns}


def good_reasoning(rng: random.Random, profile: dict, conditions: list[str]) -> str:
    slots = {
        "symptom": profile["symptoms"][0],
        "history": (profile["past_medical_history"] or ["no chronic illness"])[0],
        "first": conditions[0],
        "others": ", ".join(conditions[1:]) or "few alternatives",
        "hr": profile["vital_signs"]["heart_rate"].split("/")[0],
        "bp": profile["vital_signs"]["blood_pressure"],
        "medication": (profile["medications"] or ["none"])[0],
        "job": rng.choice(JOBS),
    }
    sentences = [REASONING[0], REASONING[1], *rng.sample(REASONING[2:], rng.randint(4, 8))]
    return " ".join(fill(rng, sentence, **slots) for sentence in sentences)


def good_expert(rng: random.Random, pairs: list[tuple[str, str]]) -> dict:
    likelihood = ("high", "moderate", "low")
    return {
        "differential_diagnosis": [
            {
                "condition": condition,
                "icd10_code": code,
                "likelihood": likelihood[min(index, 2)],
                "rationale": fill(rng, rng.choice(RATIONALES)),
            }
            for index, (condition, code) in enumerate(pairs)
        ],
        "risk_assessment": {
            "level": rng.choice(("low", "moderate", "high")),
            "factors": pick(rng, RISK_FACTORS, 1, 3),
        },
        "investigations": pick(rng, INVESTIGATIONS, 2, 5),
        "treatment_plan": pick(rng, TREATMENTS, 2, 4),
        "red_flags": pick(rng, FLAGS, 1, 3),
    }


def good_sample(rng: random.Random, matching: list[tuple[str, str]]) -> dict[str, str]:
    age, sex = rng.randint(18, 90), rng.choice(("male", "female"))
    profile = good_profile(rng, age, sex)
    by_code = {code: name for name, code in rng.sample(matching, len(matching))}  # one per code
    pairs = [(name, code) for code, name in rng.sample(sorted(by_code.items()), rng.randint(2, 5))]
    return {
        "profile": json.dumps(profile),
        "dialogue": json.dumps(good_dialogue(rng)),
        "reasoning": good_reasoning(rng, profile, [condition for condition, _ in pairs]),
        "expert": json.dumps(good_expert(rng, pairs)),
    }


def junk_sample(rng: random.Random, mismatched: list[tuple[str, str]]) -> dict[str, str]:
    profile = good_profile(rng, rng.randint(18, 90), rng.choice(("male", "female")))
    for name in ("symptoms", "past_medical_history", "medications", "allergies", "risk_factors"):
        profile[name] = [rng.choice(JUNK_STRINGS)]
    profile["vital_signs"] = {name: rng.choice(("", "normal", "N/A")) for name in PROFILE_VITALS}
    profile["chief_complaint"] = rng.choice(("N/A", "string", "..."))
    loop = rng.choice(LOOPS)
    condition, code = rng.choice(mismatched)
    same = {
        "condition": condition,
        "icd10_code": code,
        "likelihood": "high",
        "rationale": condition,
    }
    expert = {
        "differential_diagnosis": [same] * 4,
        "risk_assessment": {"level": "low", "factors": [rng.choice(JUNK_STRINGS)]},
        "investigations": [rng.choice(JUNK_STRINGS)],
        "treatment_plan": [rng.choice(JUNK_STRINGS)],
        "red_flags": [rng.choice(JUNK_STRINGS)],
    }
    turns = [{"speaker": "doctor", "text": rng.choice(("]]", "}", loop))}] * rng.randint(4, 12)
    return {
        "profile": json.dumps(profile),
        "dialogue": json.dumps({"turns": turns}),
        "reasoning": " ".join([loop] * rng.randint(20, 40)),
        "expert": json.dumps(expert),
    }


PROFILE_VITALS = ("heart_rate", "blood_pressure", "respiratory_rate", "temperature")
PROFILE_VITALS += ("oxygen_saturation",)


def samples(n: int, seed: int = 19) -> list[dict[str, str]]:
    """``n`` raw consult samples (stage name → reply text): odd positions good, even junk."""
    rng = random.Random(seed)
    matching, mismatched = diagnosis_pairs()
    return [good_sample(rng, matching) if i % 2 else junk_sample(rng, mismatched) for i in range(n)]
