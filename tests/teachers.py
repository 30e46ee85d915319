"""Scripted teachers: responders for the fake server that answer each recipe stage correctly.

They read the stage from the prompt, so a test only scripts the deviations it cares about
(a 500, an invalid JSON, a wrong code) with ``server.enqueue`` and lets these answer the rest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def first_user_message(request: dict[str, Any]) -> str:
    if "messages" in request:
        return next(m["content"] for m in request["messages"] if m["role"] == "user")
    return request.get("prompt", "")


def consult_stage(request: dict[str, Any]) -> str:
    text = first_user_message(request)
    if text.startswith("Write the patient profile"):
        return "profile"
    if text.startswith("Write a multi-turn consultation"):
        return "dialogue"
    if text.rstrip().endswith("Give your clinical reasoning."):
        return "reasoning"
    if "Return a JSON object with:" in text and "differential_diagnosis" in text:
        return "expert"
    raise ValueError(f"not a consult prompt: {text[:80]!r}")


def profile_reply(request: dict[str, Any]) -> str:
    text = first_user_message(request)
    age = int(re.search(r"age \((\d+)\)", text).group(1))
    sex = re.search(r"sex \((male|female)\)", text).group(1)
    # The scenario's background makes each profile (and so every later stage) its own request.
    background = re.search(r'"background": "(.*?)"', text)
    return json.dumps(
        {
            "name": "Alex K.",
            "age": age,
            "sex": sex,
            "chief_complaint": "I have had chest pain since this morning",
            "symptoms": ["central chest pressure for 2 hours", "sweating"],
            "past_medical_history": ["hypertension"],
            "medications": ["amlodipine 5 mg daily"],
            "allergies": [],
            "risk_factors": ["smoker"],
            "social_history": "Works as a driver, smokes 10 cigarettes a day. "
            + (background.group(1) if background else ""),
            "vital_signs": {
                "heart_rate": "98/min",
                "blood_pressure": "150/90 mm Hg",
                "respiratory_rate": "18/min",
                "temperature": "36.8 C",
                "oxygen_saturation": "97%",
            },
        }
    )


DIALOGUE = {
    "turns": [
        {"speaker": "doctor", "text": "What brings you in today?"},
        {"speaker": "patient", "text": "A pressing pain in my chest since this morning."},
        {"speaker": "doctor", "text": "Does it spread anywhere, and are you short of breath?"},
        {"speaker": "patient", "text": "Down my left arm, and I feel sweaty."},
        {"speaker": "doctor", "text": "We will do an ECG and blood tests right away."},
        {"speaker": "patient", "text": "Is it my heart?"},
        {"speaker": "doctor", "text": "It may be, so we treat it as your heart until we know."},
        {"speaker": "patient", "text": "Should I take anything now?"},
    ]
}

REASONING = (
    "The patient has central chest pressure radiating to the left arm with diaphoresis and "
    "cardiovascular risk factors including hypertension and smoking. This presentation is "
    "concerning for an acute coronary syndrome until proven otherwise. The differential "
    "includes unstable angina, non-ST elevation myocardial infarction, aortic dissection, "
    "pulmonary embolism and gastro-oesophageal reflux. An ECG within ten minutes and serial "
    "troponins will separate these; aspirin should be given early if there is no contraindication."
)

EXPERT = {
    "differential_diagnosis": [
        {
            "condition": "NSTEMI",
            "icd10_code": "I21.4",
            "likelihood": "high",
            "rationale": "Typical ischaemic pain with risk factors",
        },
        {
            "condition": "Unstable angina",
            "icd10_code": "I20.0",
            "likelihood": "moderate",
            "rationale": "Possible if troponins stay negative",
        },
        {
            "condition": "GERD",
            "icd10_code": "K21.9",
            "likelihood": "low",
            "rationale": "Burning quality would suggest it",
        },
    ],
    "risk_assessment": {"level": "high", "factors": ["ongoing chest pain", "smoker"]},
    "investigations": ["12-lead ECG", "serial high-sensitivity troponin", "chest X-ray"],
    "treatment_plan": ["aspirin 300 mg chewed", "cardiology review", "continuous monitoring"],
    "red_flags": ["hypotension", "new arrhythmia"],
}


def consult_teacher(request: dict[str, Any]) -> str:
    """A responder that answers every consult stage validly."""
    stage = consult_stage(request)
    if stage == "profile":
        return profile_reply(request)
    if stage == "dialogue":
        return json.dumps(DIALOGUE)
    if stage == "reasoning":
        return REASONING
    return json.dumps(EXPERT)


SPECIALTIES = ("cardiology", "neurology", "paediatrics", "psychiatry")


def write_scenarios(path: Path, n: int, specialties: tuple[str, ...] = SPECIALTIES) -> Path:
    """A consult source of n scenarios (case-00, case-01, ...) that the scripted teacher answers."""
    scenarios = [
        {
            "id": f"case-{i:02d}",
            "specialty": specialties[i % len(specialties)],
            "age": 30 + i,
            "sex": "female" if i % 2 else "male",
            "symptoms": ["chest pain", "sweating"],
            "risk_factors": ["smoker"],
            "background": "Presents to the emergency department.",
        }
        for i in range(n)
    ]
    path.write_text(json.dumps(scenarios))
    return path
