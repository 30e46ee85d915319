"""The clinical content of the synthetic demo: lab tests, drugs, and admission reasons whose
diagnoses come with fitting labs, drugs, cultures, imaging and procedures.

Item ids, ICD codes and titles are real MIMIC-IV / ICD values, so the demo looks like the real
data to every query; patients, dates, values and texts are invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabItem:
    itemid: int
    label: str
    fluid: str
    category: str
    unit: str | None
    low: float | None
    high: float | None
    decimals: int


LAB_ITEMS: dict[str, LabItem] = {
    item.label: item
    for item in (
        LabItem(50912, "Creatinine", "Blood", "Chemistry", "mg/dL", 0.5, 1.2, 1),
        LabItem(50983, "Sodium", "Blood", "Chemistry", "mEq/L", 133, 145, 0),
        LabItem(50971, "Potassium", "Blood", "Chemistry", "mEq/L", 3.3, 5.1, 1),
        LabItem(50882, "Bicarbonate", "Blood", "Chemistry", "mEq/L", 22, 32, 0),
        LabItem(50931, "Glucose", "Blood", "Chemistry", "mg/dL", 70, 100, 0),
        LabItem(51006, "Urea Nitrogen", "Blood", "Chemistry", "mg/dL", 6, 20, 0),
        LabItem(50868, "Anion Gap", "Blood", "Chemistry", "mEq/L", 8, 20, 0),
        LabItem(50963, "NTproBNP", "Blood", "Chemistry", "pg/mL", 0, 450, 0),
        LabItem(51003, "Troponin T", "Blood", "Chemistry", "ng/mL", 0, 0.01, 2),
        LabItem(51222, "Hemoglobin", "Blood", "Hematology", "g/dL", 12.0, 16.0, 1),
        LabItem(51301, "White Blood Cells", "Blood", "Hematology", "K/uL", 4.0, 11.0, 1),
        LabItem(51265, "Platelet Count", "Blood", "Hematology", "K/uL", 150, 440, 0),
        LabItem(51237, "INR(PT)", "Blood", "Hematology", None, 0.9, 1.1, 1),
        LabItem(50813, "Lactate", "Blood", "Blood Gas", "mmol/L", 0.5, 2.0, 1),
        LabItem(50818, "pCO2", "Blood", "Blood Gas", "mm Hg", 35, 45, 0),
        LabItem(50820, "pH", "Blood", "Blood Gas", "units", 7.35, 7.45, 2),
    )
}
# Drawn every morning of every stay.
DAILY_PANEL = (
    "Creatinine",
    "Sodium",
    "Potassium",
    "Bicarbonate",
    "Glucose",
    "Urea Nitrogen",
    "Hemoglobin",
    "White Blood Cells",
    "Platelet Count",
)


@dataclass(frozen=True)
class Drug:
    """A prescription as pharmacy writes it, and its name on the eMAR."""

    drug: str
    emar_name: str
    dose: str
    unit: str
    route: str
    per_day: int  # administrations per 24 h (0: once)
    strength: str
    form_val: str
    form_unit: str
    formulary_cd: str
    gsn: str
    ndc: str
    drug_type: str = "MAIN"


def _drug(*args: str | int, drug_type: str = "MAIN") -> Drug:
    return Drug(*args, drug_type=drug_type)  # type: ignore[arg-type]


DRUGS: dict[str, Drug] = {
    d.drug: d
    for d in (
        _drug("Furosemide", "Furosemide", "40", "mg", "IV", 2, "40mg/4mL Vial", "4", "mL",
              "FURO40I", "008208", "00641608025"),
        _drug("Metoprolol Succinate XL", "Metoprolol Succinate XL", "50", "mg", "PO/NG", 1,
              "50mg Tablet", "1", "TAB", "METS50", "017981", "00186109205"),
        _drug("Lisinopril", "Lisinopril", "5", "mg", "PO", 1, "5mg Tablet", "1", "TAB",
              "LISI5", "000388", "68180051301"),
        _drug("Potassium Chloride", "Potassium Chloride", "20", "mEq", "PO", 1,
              "20mEq Tab Sust.Rel.", "1", "TAB", "KCL20", "001260", "00245004101"),
        _drug("CefTRIAXone", "CefTRIAXone", "1", "g", "IV", 1, "1g Vial", "1", "VIAL",
              "CEFT1I", "009184", "00409733201"),
        _drug("Azithromycin", "Azithromycin", "500", "mg", "IV", 1, "500 mg Vial", "1",
              "VIAL", "AZIT500I", "025452", "00069315083"),
        _drug("Acetaminophen", "Acetaminophen", "650", "mg", "PO/NG", 4, "325mg Tablet", "2",
              "TAB", "ACET325", "004489", "00904198861"),
        _drug("Insulin", "Insulin Human Regular", "100", "UNIT", "IV DRIP", 0,
              "100 Units / 100 mL Bag", "100", "mL", "INSULIN100", "061401", "0"),
        _drug("Insulin Glargine", "Glargine", "20", "UNIT", "SC", 1, "100 Units / mL - 3 mL Pen",
              "0.2", "mL", "GLAR100I", "030175", "00088221905"),
        _drug("Sodium Chloride 0.9%", "Sodium Chloride 0.9%", "1000", "mL", "IV", 1,
              "1000mL Bag", "1000", "mL", "NS1000", "001325", "00338004904", drug_type="BASE"),
        _drug("Pantoprazole", "Pantoprazole", "40", "mg", "IV", 2, "40mg Vial", "1", "VIAL",
              "PANT40I", "041532", "00008092355"),
        _drug("PredniSONE", "PredniSONE", "40", "mg", "PO", 1, "20mg Tablet", "2", "TAB",
              "PRED20", "006747", "00054474125"),
        _drug("Ipratropium-Albuterol Neb", "Ipratropium-Albuterol Neb", "1", "NEB", "IH", 4,
              "3mL Vial", "1", "VIAL", "IPRAL", "016617", "00487020160"),
        _drug("OxyCODONE (Immediate Release)", "OxyCODONE (Immediate Release)", "5", "mg",
              "PO", 4, "5mg Tablet", "1", "TAB", "OXYC5", "004225", "00406055262"),
        _drug("Enoxaparin Sodium", "Enoxaparin Sodium", "40", "mg", "SC", 1, "40mg/0.4mL Syringe",
              "0.4", "mL", "ENOX40", "021773", "00075062040"),
        _drug("Amlodipine", "Amlodipine", "5", "mg", "PO", 1, "5mg Tablet", "1", "TAB",
              "AMLO5", "016926", "00093716701"),
        _drug("Insulin Lispro Sliding Scale", "Insulin Lispro", "0", "UNIT", "SC", 4,
              "100 Units / mL - 3 mL Pen", "0", "mL", "HUML100I", "029410", "00002751659"),
        _drug("Atorvastatin", "Atorvastatin", "40", "mg", "PO/NG", 1, "40mg Tablet", "1", "TAB",
              "ATOR40", "029968", "00378201777"),
        _drug("Apixaban", "Apixaban", "5", "mg", "PO", 2, "5 mg Tablet", "1", "TAB", "APIX5",
              "066617", "00003089421"),
        _drug("Nicotine Patch", "Nicotine Patch", "14", "mg", "TD", 1, "14 mg/24 hr Patch", "1",
              "PTCH", "NICO14", "019526", "00536589688"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Code:
    icd9: str
    icd9_title: str
    icd10: str
    icd10_title: str


@dataclass(frozen=True)
class Imaging:
    exam: str
    findings: str
    impression: str
    day: int = 1  # hospital day it is taken


@dataclass(frozen=True)
class Culture:
    spec_itemid: int
    spec_type_desc: str
    test_itemid: int
    test_name: str
    org_itemid: int | None
    org_name: str | None
    # (antibiotic itemid, name, dilution, interpretation)
    susceptibilities: tuple[tuple[int, str, str, str], ...] = ()


@dataclass(frozen=True)
class Condition:
    key: str
    words: str  # how the notes name it
    diagnoses: tuple[Code, ...]
    service: str
    ward: str
    stay_days: tuple[int, int]
    # lab label -> (value on admission, value at discharge)
    labs: dict[str, tuple[float, float]]
    drugs: tuple[str, ...]
    complaint: str
    hpi: str
    course: str
    instructions: str
    imaging: tuple[Imaging, ...] = ()
    cultures: tuple[Culture, ...] = ()
    procedures: tuple[Code, ...] = ()
    icu_probability: float = 0.0
    admission_types: tuple[str, ...] = ("EW EMER.", "URGENT", "DIRECT EMER.")
    extra: dict[str, str] = field(default_factory=dict)


CHEST_PA_LAT = "CHEST (PA AND LAT)"
CHEST_PORTABLE = "CHEST (PORTABLE AP)"

CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "heart_failure",
        "acute on chronic systolic heart failure",
        (Code("42823", "Acute on chronic systolic heart failure", "I5023",
              "Acute on chronic systolic (congestive) heart failure"),),
        "CMED",
        "Medicine/Cardiology",
        (3, 7),
        {"NTproBNP": (8600, 3100), "Creatinine": (1.6, 1.2), "Sodium": (131, 137),
         "Troponin T": (0.03, 0.02)},
        ("Furosemide", "Metoprolol Succinate XL", "Lisinopril", "Potassium Chloride"),
        "Shortness of breath and leg swelling",
        "presents with one week of worsening dyspnoea on exertion, three-pillow orthopnoea and "
        "bilateral leg swelling after running out of diuretic",
        "was diuresed with IV furosemide with good urine output and a net negative balance; "
        "dyspnoea and oedema improved, creatinine returned towards baseline and "
        "guideline-directed therapy was resumed",
        "Weigh yourself every morning and call if your weight goes up by more than 3 lb. "
        "Limit salt and fluids as discussed.",
        imaging=(Imaging(CHEST_PA_LAT, "Enlarged cardiac silhouette. Moderate pulmonary "
                         "vascular congestion with interstitial oedema. Small bilateral pleural "
                         "effusions.", "Moderate pulmonary oedema and small effusions."),),
        procedures=(Code("8872", "Diagnostic ultrasound of heart", "B246ZZZ",
                         "Ultrasonography of Right and Left Heart"),),
    ),
    Condition(
        "pneumonia",
        "community-acquired pneumonia",
        (Code("486", "Pneumonia, organism unspecified", "J189",
              "Pneumonia, unspecified organism"),),
        "MED",
        "Medicine",
        (3, 6),
        {"White Blood Cells": (16.8, 8.9), "Lactate": (2.7, 1.1)},
        ("CefTRIAXone", "Azithromycin", "Acetaminophen"),
        "Fever and productive cough",
        "presents with four days of fever to 102F, cough productive of rusty sputum and "
        "right-sided pleuritic chest pain",
        "was treated with ceftriaxone and azithromycin; fever resolved by hospital day 2, "
        "oxygen was weaned to room air and the sputum culture grew pan-sensitive "
        "Streptococcus pneumoniae",
        "Finish the antibiotic course. Return if fever comes back or breathing gets worse.",
        imaging=(Imaging(CHEST_PA_LAT, "Dense consolidation in the right lower lobe. No "
                         "pleural effusion or pneumothorax.", "Right lower lobe pneumonia."),),
        cultures=(
            Culture(70070, "SPUTUM", 90039, "RESPIRATORY CULTURE", 80155,
                    "STREPTOCOCCUS PNEUMONIAE", ((90006, "PENICILLIN G", "<=0.06", "S"),
                                                 (90018, "CEFTRIAXONE", "<=0.25", "S"),
                                                 (90012, "ERYTHROMYCIN", ">=8", "R"))),
            Culture(70012, "BLOOD CULTURE", 90201, "Blood Culture, Routine", None, None),
        ),
    ),
    Condition(
        "dka",
        "diabetic ketoacidosis",
        (Code("25013", "Diabetes with ketoacidosis, type I [juvenile type], uncontrolled",
              "E1010", "Type 1 diabetes mellitus with ketoacidosis without coma"),),
        "MED",
        "Medicine",
        (2, 5),
        {"Glucose": (540, 165), "Bicarbonate": (9, 24), "Anion Gap": (28, 12),
         "Potassium": (5.6, 4.0), "pH": (7.12, 7.37)},
        ("Insulin", "Sodium Chloride 0.9%", "Potassium Chloride", "Insulin Glargine"),
        "Nausea, vomiting and abdominal pain",
        "with type 1 diabetes presents with two days of nausea, vomiting, polyuria and "
        "abdominal pain after missing insulin doses",
        "was admitted to the ICU on an insulin infusion with IV fluids and potassium "
        "repletion; the anion gap closed within 18 hours and the patient was bridged to "
        "subcutaneous glargine",
        "Never skip your long-acting insulin, check your sugar four times a day and follow "
        "your sick-day rules.",
        icu_probability=0.9,
    ),
    Condition(
        "urosepsis",
        "sepsis from a urinary tract infection with acute kidney injury",
        (Code("0389", "Unspecified septicemia", "A419", "Sepsis, unspecified organism"),
         Code("5990", "Urinary tract infection, site not specified", "N390",
              "Urinary tract infection, site not specified"),
         Code("5849", "Acute kidney failure, unspecified", "N179",
              "Acute kidney failure, unspecified")),
        "MED",
        "Medicine",
        (4, 8),
        {"White Blood Cells": (18.4, 8.6), "Lactate": (3.9, 1.2), "Creatinine": (2.4, 1.1)},
        ("CefTRIAXone", "Sodium Chloride 0.9%", "Acetaminophen"),
        "Fever, confusion and burning on urination",
        "presents with two days of dysuria and fever, found confused and hypotensive by family",
        "received fluid resuscitation and ceftriaxone; blood and urine cultures grew E. coli "
        "sensitive to ceftriaxone, blood pressure recovered and creatinine improved with fluids",
        "Complete the antibiotics and drink plenty of fluids. Hold your blood pressure "
        "pills until your doctor sees you.",
        imaging=(Imaging("CT ABD & PELVIS WITH CONTRAST", "No hydronephrosis or renal abscess. "
                         "Mild bladder wall thickening.", "Findings compatible with cystitis; "
                         "no obstruction."),),
        cultures=(
            Culture(70079, "URINE", 90235, "URINE CULTURE", 80002, "ESCHERICHIA COLI",
                    ((90018, "CEFTRIAXONE", "<=1", "S"), (90028, "CIPROFLOXACIN", ">=4", "R"),
                     (90025, "NITROFURANTOIN", "<=16", "S"))),
            Culture(70012, "BLOOD CULTURE", 90201, "Blood Culture, Routine", 80002,
                    "ESCHERICHIA COLI", ((90018, "CEFTRIAXONE", "<=1", "S"),)),
        ),
        icu_probability=0.4,
    ),
    Condition(
        "gi_bleed",
        "upper gastrointestinal bleeding",
        (Code("5789", "Hemorrhage of gastrointestinal tract, unspecified", "K922",
              "Gastrointestinal hemorrhage, unspecified"),),
        "MED",
        "Medicine",
        (3, 6),
        {"Hemoglobin": (6.9, 9.3), "Urea Nitrogen": (48, 17), "INR(PT)": (1.3, 1.1)},
        ("Pantoprazole",),
        "Black stools and light-headedness",
        "presents with three days of black tarry stools and light-headedness on standing",
        "was transfused two units of packed red cells and started on IV pantoprazole; "
        "endoscopy showed a clean-based duodenal ulcer and the haemoglobin remained stable",
        "Avoid ibuprofen, naproxen and aspirin. Take pantoprazole twice a day and come back "
        "for any black stool or vomiting of blood.",
        procedures=(
            Code("9904", "Transfusion of packed cells", "30233N1", "Transfusion of "
                 "Nonautologous Red Blood Cells into Peripheral Vein, Percutaneous Approach"),
            Code("4513", "Other endoscopy of small intestine", "0DJ08ZZ", "Inspection of Upper "
                 "Intestinal Tract, Via Natural or Artificial Opening Endoscopic"),
        ),
        icu_probability=0.2,
    ),
    Condition(
        "copd",
        "an exacerbation of chronic obstructive pulmonary disease",
        (Code("49121", "Obstructive chronic bronchitis with (acute) exacerbation", "J441",
              "Chronic obstructive pulmonary disease with (acute) exacerbation"),),
        "MED",
        "Medicine",
        (3, 6),
        {"pCO2": (58, 46), "pH": (7.31, 7.38), "White Blood Cells": (12.2, 9.8)},
        ("PredniSONE", "Ipratropium-Albuterol Neb", "Azithromycin"),
        "Worsening shortness of breath and wheeze",
        "with COPD presents with five days of increasing dyspnoea, wheeze and sputum after "
        "a viral illness",
        "improved with nebulised bronchodilators, prednisone and azithromycin; hypercapnia "
        "resolved without non-invasive ventilation",
        "Finish the prednisone taper, use your inhalers as shown and do not smoke.",
        imaging=(Imaging(CHEST_PORTABLE, "Hyperinflated lungs with flattened diaphragms. No "
                         "focal consolidation.", "Hyperinflation without pneumonia."),),
    ),
    Condition(
        "hip_fracture",
        "a right intertrochanteric hip fracture after a fall",
        (Code("82021", "Closed fracture of intertrochanteric section of neck of femur",
              "S72141A", "Displaced intertrochanteric fracture of right femur, initial "
              "encounter for closed fracture"),),
        "ORTHO",
        "Orthopaedics",
        (3, 7),
        {"Hemoglobin": (12.1, 9.4)},
        ("OxyCODONE (Immediate Release)", "Enoxaparin Sodium", "Acetaminophen"),
        "Right hip pain after a fall",
        "presents after a mechanical fall at home with right hip pain and inability to bear "
        "weight",
        "underwent open reduction and internal fixation on hospital day 2; pain was "
        "controlled with oral medication and physical therapy started weight bearing as "
        "tolerated",
        "Take enoxaparin injections for four weeks. Weight bearing as tolerated with a walker.",
        imaging=(Imaging("HIP 2 VIEWS RIGHT", "Displaced intertrochanteric fracture of the "
                         "right femur.", "Right intertrochanteric fracture."),),
        procedures=(Code("7935", "Open reduction of fracture with internal fixation, femur",
                         "0QS604Z", "Reposition Right Upper Femur with Internal Fixation "
                         "Device, Open Approach"),),
        admission_types=("EW EMER.", "URGENT"),
    ),
)  # fmt: skip

# Chronic conditions a patient carries across admissions, with the home drug that goes with each.
COMORBIDITIES: tuple[tuple[Code, str | None], ...] = (
    (Code("4019", "Unspecified essential hypertension", "I10",
          "Essential (primary) hypertension"), "Amlodipine"),
    (Code("25000", "Diabetes mellitus without mention of complication, type II or unspecified "
          "type, not stated as uncontrolled", "E119",
          "Type 2 diabetes mellitus without complications"), "Insulin Lispro Sliding Scale"),
    (Code("2724", "Other and unspecified hyperlipidemia", "E785",
          "Hyperlipidemia, unspecified"), "Atorvastatin"),
    (Code("42731", "Atrial fibrillation", "I4891", "Unspecified atrial fibrillation"),
     "Apixaban"),
    (Code("5859", "Chronic kidney disease, unspecified", "N189",
          "Chronic kidney disease, unspecified"), None),
    (Code("3051", "Tobacco use disorder", "F17210",
          "Nicotine dependence, cigarettes, uncomplicated"), "Nicotine Patch"),
)  # fmt: skip

# Values of the admissions table by MIMIC-IV version: v3.x spells languages in full, with values
# longer than v2.2's VARCHAR(10) allowed.
LANGUAGES = {
    "2.2": ("ENGLISH", "ENGLISH", "ENGLISH", "ENGLISH", "?", "?"),
    "3.1": ("English", "English", "English", "Spanish", "Kabuverdianu", "American Sign Language"),
}
INSURANCES = {
    "2.2": ("Medicare", "Medicaid", "Other"),
    "3.1": ("Medicare", "Medicaid", "Private", "Other", "No charge"),
}
RACES = (
    "WHITE",
    "WHITE",
    "BLACK/AFRICAN AMERICAN",
    "HISPANIC/LATINO - PUERTO RICAN",
    "ASIAN - CHINESE",
    "UNKNOWN",
)
MARITAL = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED", None)
DISCHARGE_LOCATIONS = ("HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB")
ANCHOR_YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022")
