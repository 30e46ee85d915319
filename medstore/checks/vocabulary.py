"""The words and patterns entity extraction recognises (``medstore.checks.entities``).

Rule-based on purpose: unit and route vocabularies, a drug lexicon plus drug-name suffixes,
disease terms and diagnostic triggers. Each table maps what a note may write to one canonical
spelling, so an original and its rewrite are compared on the same terms.
"""

from __future__ import annotations

import re

_NUMBER_NAMES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS = {word: str(value) for value, word in enumerate(_NUMBER_NAMES.split())}

# Written unit → canonical unit. Longer spellings are tried first.
UNIT_SYNONYMS = {
    "mm hg": "mmhg",
    "mmhg": "mmhg",
    "cm h2o": "cmh2o",
    "mg/dl": "mg/dl",
    "g/dl": "g/dl",
    "mg/l": "mg/l",
    "g/l": "g/l",
    "ng/ml": "ng/ml",
    "ng/dl": "ng/dl",
    "pg/ml": "pg/ml",
    "µg/ml": "ug/ml",
    "ug/ml": "ug/ml",
    "µg/dl": "ug/dl",
    "ug/dl": "ug/dl",
    "meq/l": "meq/l",
    "mmol/l": "mmol/l",
    "µmol/l": "umol/l",
    "umol/l": "umol/l",
    "nmol/l": "nmol/l",
    "pmol/l": "pmol/l",
    "mosm/kg": "mosm/kg",
    "mosm/l": "mosm/l",
    "u/l": "u/l",
    "iu/l": "iu/l",
    "miu/ml": "miu/ml",
    "µu/ml": "uu/ml",
    "uu/ml": "uu/ml",
    "mg/kg/day": "mg/kg/day",
    "mg/kg": "mg/kg",
    "µg/kg": "ug/kg",
    "ml/min": "ml/min",
    "ml/h": "ml/h",
    "ml/hr": "ml/h",
    "l/min": "l/min",
    "ml/kg": "ml/kg",
    "cells/µl": "/ul",
    "cells/ul": "/ul",
    "cells/mm3": "/mm3",
    "/mm3": "/mm3",
    "/mm³": "/mm3",
    "/µl": "/ul",
    "/ul": "/ul",
    "/hpf": "/hpf",
    "/lpf": "/lpf",
    "/min": "/min",
    "beats/min": "/min",
    "breaths/min": "/min",
    "bpm": "/min",
    "per minute": "/min",
    "/h": "/h",
    "/hr": "/h",
    "/l": "/l",
    "/day": "/day",
    "per day": "/day",
    "µm3": "um3",
    "um3": "um3",
    "fl": "fl",
    "pg": "pg",
    "mcg": "ug",
    "µg": "ug",
    "ug": "ug",
    "mg": "mg",
    "g": "g",
    "kg": "kg",
    "lb": "lb",
    "lbs": "lb",
    "oz": "oz",
    "ml": "ml",
    "dl": "dl",
    "l": "l",
    "cm": "cm",
    "mm": "mm",
    "µm": "um",
    "um": "um",
    "ft": "ft",
    "°c": "c",
    "˚c": "c",
    "ºc": "c",
    "°f": "f",
    "˚f": "f",
    "ºf": "f",
    "c": "c",
    "f": "f",
    "%": "%",
    "percent": "%",
    "units": "units",
    "unit": "units",
    "u": "units",
    "iu": "iu",
    "meq": "meq",
    "mmol": "mmol",
    "kcal": "kcal",
    "gy": "gy",
    "mg/m2": "mg/m2",
    "year-old": "year",
    "years-old": "year",
    "year old": "year",
    "years old": "year",
    "years": "year",
    "year": "year",
    "yr": "year",
    "yrs": "year",
    "y/o": "year",
    "months": "month",
    "month": "month",
    "weeks": "week",
    "week": "week",
    "wk": "week",
    "days": "day",
    "day": "day",
    "hours": "hour",
    "hour": "hour",
    "hrs": "hour",
    "hr": "hour",
    "h": "hour",
    "minutes": "minute",
    "minute": "minute",
    "min": "minute",
    "seconds": "second",
    "second": "second",
    "sec": "second",
    "times": "times",
    "pack-years": "pack-year",
    "pack-year": "pack-year",
    "pack years": "pack-year",
    "packs": "pack",
    "pack": "pack",
    "cigarettes": "cigarette",
    "drinks": "drink",
    "drink": "drink",
    "glasses": "glass",
    "glass": "glass",
    "cups": "cup",
    "cup": "cup",
    "tablets": "tablet",
    "tablet": "tablet",
    "puffs": "puff",
    "episodes": "episode",
    "episode": "episode",
    "mmh2o": "mmh2o",
}
_UNITS = sorted(UNIT_SYNONYMS, key=len, reverse=True)
_UNIT_PATTERN = "|".join(re.escape(unit) for unit in _UNITS)
_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_NUMBER_OR_WORD = rf"(?:{_NUMBER}|{'|'.join(NUMBER_WORDS)})"
# A value: a number (or range, or ratio such as a blood pressure) and an optional unit. Digits
# glued to letters (T4, HbA1c, B12) are names, not values.
VALUE = re.compile(
    rf"(?<![\w.]){'('}{_NUMBER_OR_WORD}(?:\s*(?:-|/|to)\s*{_NUMBER})*{')'}"
    rf"(?:(?:\s*|-)({_UNIT_PATTERN}))?(?![\w/])",
    re.IGNORECASE,
)

ROUTES = {
    "oral": "oral",
    "orally": "oral",
    "po": "oral",
    "by mouth": "oral",
    "intravenous": "iv",
    "intravenously": "iv",
    "iv": "iv",
    "i.v.": "iv",
    "intramuscular": "im",
    "intramuscularly": "im",
    "im": "im",
    "i.m.": "im",
    "subcutaneous": "sc",
    "subcutaneously": "sc",
    "sc": "sc",
    "sq": "sc",
    "subq": "sc",
    "topical": "topical",
    "topically": "topical",
    "inhaled": "inhaled",
    "nebulized": "inhaled",
    "sublingual": "sublingual",
    "sublingually": "sublingual",
    "rectal": "rectal",
    "rectally": "rectal",
    "intrathecal": "intrathecal",
    "transdermal": "transdermal",
    "intranasal": "intranasal",
    "intravitreal": "intravitreal",
}
FREQUENCIES = {
    "once daily": "daily",
    "once a day": "daily",
    "daily": "daily",
    "qd": "daily",
    "every day": "daily",
    "twice daily": "bid",
    "twice a day": "bid",
    "bid": "bid",
    "b.i.d.": "bid",
    "three times daily": "tid",
    "three times a day": "tid",
    "tid": "tid",
    "t.i.d.": "tid",
    "four times daily": "qid",
    "four times a day": "qid",
    "qid": "qid",
    "q.i.d.": "qid",
    "weekly": "weekly",
    "once a week": "weekly",
    "monthly": "monthly",
    "nightly": "nightly",
    "at bedtime": "nightly",
    "qhs": "nightly",
    "as needed": "prn",
    "prn": "prn",
    "every other day": "qod",
}
EVERY_HOURS = re.compile(r"\b(?:every\s+(\d+)\s*(?:hours|hrs|h)|q\s?(\d+)\s?h(?:rs?)?)\b", re.I)


def _alternation(words: dict[str, str]) -> re.Pattern[str]:
    ordered = sorted(words, key=len, reverse=True)
    return re.compile(
        r"(?<![\w.])(" + "|".join(re.escape(w) for w in ordered) + r")(?![\w])", re.IGNORECASE
    )


ROUTE = _alternation(ROUTES)
ROUTE_BEFORE = re.compile(ROUTE.pattern + r"\s+$", re.IGNORECASE)
FREQUENCY = _alternation(FREQUENCIES)

# Common drugs whose names no suffix rule catches, and suffixes that mark most of the rest.
DRUG_LEXICON = """
    acetaminophen paracetamol aspirin ibuprofen naproxen morphine codeine fentanyl oxycodone
    hydromorphone tramadol methadone buprenorphine naloxone heparin warfarin insulin metformin
    glucagon epinephrine norepinephrine adrenaline dopamine dobutamine vasopressin atropine
    adenosine amiodarone digoxin diltiazem verapamil nitroglycerin hydralazine clonidine
    furosemide spironolactone mannitol potassium magnesium calcium bicarbonate levothyroxine
    methimazole propylthiouracil lithium haloperidol quetiapine olanzapine risperidone
    clozapine aripiprazole fluoxetine sertraline citalopram escitalopram paroxetine bupropion
    venlafaxine duloxetine mirtazapine trazodone amitriptyline nortriptyline imipramine
    phenytoin carbamazepine valproate levetiracetam lamotrigine gabapentin pregabalin
    topiramate phenobarbital diazepam lorazepam midazolam alprazolam clonazepam zolpidem
    propofol ketamine succinylcholine rocuronium vecuronium dantrolene bromocriptine
    cabergoline levodopa carbidopa selegiline donepezil memantine physostigmine
    pyridostigmine neostigmine edrophonium albuterol salbutamol ipratropium tiotropium
    montelukast theophylline prednisone prednisolone methylprednisolone hydrocortisone
    dexamethasone fludrocortisone allopurinol colchicine febuxostat probenecid methotrexate
    hydroxychloroquine sulfasalazine azathioprine cyclosporine tacrolimus mycophenolate
    cyclophosphamide tamoxifen letrozole anastrozole leuprolide finasteride tamsulosin
    sildenafil oxytocin misoprostol mifepristone magnesium sulfate terbutaline nifedipine
    labetalol penicillin amoxicillin ampicillin vancomycin metronidazole clindamycin
    doxycycline tetracycline ceftriaxone cefazolin cephalexin cefepime ceftazidime
    azithromycin erythromycin clarithromycin gentamicin tobramycin amikacin ciprofloxacin
    levofloxacin moxifloxacin trimethoprim sulfamethoxazole nitrofurantoin rifampin
    isoniazid pyrazinamide ethambutol fluconazole itraconazole voriconazole amphotericin
    nystatin acyclovir valacyclovir ganciclovir oseltamivir zidovudine tenofovir ivermectin
    albendazole mebendazole praziquantel chloroquine primaquine quinine artemether
    deferoxamine penicillamine thiamine folate cyanocobalamin iron ferrous octreotide
    desmopressin somatostatin alteplase streptokinase clopidogrel ticagrelor abciximab
    enoxaparin fondaparinux dabigatran rivaroxaban apixaban protamine vitamin
    ondansetron metoclopramide promethazine loperamide lactulose omeprazole pantoprazole
    ranitidine famotidine sucralfate bismuth mesalamine infliximab adalimumab rituximab
    trastuzumab bevacizumab imatinib interferon epoetin filgrastim
    """
DRUG_NAMES = frozenset(DRUG_LEXICON.split())
DRUG_SUFFIX = re.compile(
    r"\b[a-z]{3,}(?:cillin|mycin|micin|cycline|floxacin|conazole|idazole|vir|mab|tinib|pril|"
    r"sartan|olol|alol|dipine|statin|prazole|tidine|triptan|setron|azepam|zolam|barbital|caine|"
    r"parin|xaban|gatran|semide|thiazide|sone|olone|terol|tropium|glitazone|gliptin|gliflozin|"
    r"glinide|lukast|dronate|profen|penem|platin|rubicin|taxel|trexate|azine|oxetine|"
    r"triptyline|peridol|pramine)\b",
    re.IGNORECASE,
)
DOSE_UNITS = frozenset(
    {
        "mg",
        "g",
        "ug",
        "kg",
        "ml",
        "l",
        "units",
        "iu",
        "meq",
        "mmol",
        "mg/kg",
        "mg/kg/day",
        "ug/kg",
        "mg/m2",
        "%",
    }
)

DISEASE_HEADS = (
    "disease|syndrome|disorder|infection|cancer|carcinoma|failure|deficiency|fracture|"
    "infarction|palsy|sclerosis|anemia|anaemia|stroke|embolism|thrombosis|dissection|abscess|"
    "hernia|ulcer|fever|injury|insufficiency|stenosis|hypertension|hypotension|diabetes|"
    "tumor|tumour|lymphoma|leukemia|aneurysm|pneumonia|sepsis|shock|reflux|poisoning|toxicity"
)
DISEASE_PHRASE = re.compile(rf"\b((?:[A-Za-z][\w'-]*\s+)?(?:{DISEASE_HEADS}))\b", re.IGNORECASE)
DISEASE_WORD = re.compile(
    r"\b[a-z][a-z-]{3,}(?:itis|osis|emia|aemia|oma|pathy|iasis|plegia|ectasis|penia|cytosis)\b",
    re.IGNORECASE,
)
DIAGNOSIS_TRIGGER = re.compile(
    r"\b(?:diagnosed with|diagnosis of|diagnosis is|suspected of|suspicion of|consistent with|"
    r"suggestive of|indicative of|confirms?|due to|caused by|indicate[sd]?|positive for)\s+"
    r"([^.;:,()\n]{3,60}?)(?=$|[.;:,()\n]|\s(?:and|after|which|that|but|with|who|in|on|at|"
    r"while|when|because|as|is|was|were|are)\s)",
    re.IGNORECASE,
)
ORGANISM = re.compile(
    r"\b([A-Z][a-z]{3,}\s+[a-z]{4,}(?:ae|us|is|ii|um|ensis|ella|ica|ora|ans|ium|a))\b"
)
NOT_DIAGNOSES = frozenset(
    {
        "diagnosis",
        "prognosis",
        "hypnosis",
        "osmosis",
        "stoma",
        "aroma",
        "diploma",
        "the",
        "a",
        "an",
        "this",
        "that",
        "her",
        "his",
        "their",
        "its",
        "of",
        "with",
        "and",
        "or",
        "for",
    }
)
LEADING_WORDS = re.compile(
    r"^(?:(?:the|a|an|of|with|and|or|for|has|had|have|is|was|her|his|their|this|that|no|any|"
    r"known|acute|chronic|severe|mild|likely|possible|probable|suspected|from|to|in|on|at|"
    r"by|as|history|that|he|she|it|they|patient|patient's|there|which)\s+)+",
    re.IGNORECASE,
)
