"""Export and training benchmark.

1. Export of N synthetic consult samples (default 100,000; appended straight to the event log) to
   JSONL and to a `datasets` Arrow folder: seconds and rows/s, against a baseline measured in the
   same run: reading the same view and writing its sample JSON one per line (no messages, no
   split, no manifest, no lineage).
2. Training throughput (non-padding tokens/s) of `cli.py train` (medstore.training.train,
   LoRA on the bundled SmolLM2-135M unless --base-model) against a plain transformers Trainer
   on the same
   rows, model, LoRA settings, batch size and steps (dynamic padding via DataCollatorForSeq2Seq).
   Target ratio >= 1.0.

Run: python benchmarks/bench_export_train.py [--samples 100000] [--train-steps 4]
     python benchmarks/bench_export_train.py --device cuda --bf16 --batch-size 16 --train-steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPECIALTIES = ["cardiology", "neurology", "paediatrics", "psychiatry", "oncology"]


def synthetic_sample(index: int) -> dict:
    specialty = SPECIALTIES[index % len(SPECIALTIES)]
    return {
        "case_id": f"syn-{index:06d}",
        "specialty": specialty,
        "created_at": "2025-01-01T00:00:00Z",
        "patient_profile": {
            "age": 20 + index % 60,
            "sex": "female" if index % 2 else "male",
            "chief_complaint": f"Case {index}: pain for {1 + index % 9} days",
            "symptoms": ["pain", "fatigue", f"symptom {index % 17}"],
            "medications": ["amlodipine 5 mg daily"],
        },
        "dialogue": [
            {"speaker": "doctor", "text": "What brings you in today?"},
            {"speaker": "patient", "text": f"I have had pain for {1 + index % 9} days."},
            {"speaker": "doctor", "text": "Does it spread anywhere, and are you short of breath?"},
            {"speaker": "patient", "text": "It goes down my left arm and I feel sweaty."},
        ],
        "expert_output_text": (
            f"Case {index}. The history of {specialty} symptoms with risk factors suggests a "
            "serious cause that must be excluded first; the examination and the first tests "
            "decide between the leading diagnoses. " * 3
        ),
        "expert_output_json": {
            "diagnosis": [{"condition": "Acute coronary syndrome", "icd10_code": "I24.9"}],
            "risk": "high",
            "investigations": ["ECG", "troponin"],
        },
    }


def build_warehouse(path: Path, samples: int) -> float:
    from medstore.warehouse.events import Envelope, SampleAccepted
    from medstore.warehouse.hashing import canonical_json, content_hash
    from medstore.warehouse.store import Warehouse

    started = time.perf_counter()
    with Warehouse(path) as warehouse:
        batch = []
        for index in range(samples):
            sample = synthetic_sample(index)
            text = canonical_json(sample)
            event = SampleAccepted(
                sample_id=f"s-{index:016x}",
                content_hash=content_hash(text),
                sample=text,
                label="high",
            )
            batch.append((event, Envelope(recipe="consult", task_key=f"consult:syn-{index}:v1")))
            if len(batch) == 5000:
                warehouse.append(batch)
                batch = []
        if batch:
            warehouse.append(batch)
    return time.perf_counter() - started


def bench_export(db: Path, out: Path) -> list[tuple[str, float, int]]:
    from medstore.recipes.consult import ConsultRecipe
    from medstore.training.export import export_dataset
    from medstore.warehouse.store import Warehouse

    results = []
    with Warehouse(db) as warehouse:
        started = time.perf_counter()
        rows = warehouse.query("SELECT sample_json FROM samples WHERE recipe = 'consult'")
        with (out / "baseline.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(row["sample_json"] + "\n" for row in rows)
        results.append(
            ("baseline: view -> sample JSON lines", time.perf_counter() - started, len(rows))
        )
        for fmt in ("jsonl", "arrow"):
            started = time.perf_counter()
            result = export_dataset(warehouse, ConsultRecipe(), fmt, out / fmt)
            results.append(
                (f"export --format {fmt}", time.perf_counter() - started, result.counts["total"])
            )
    return results


def baseline_trainer(
    rows: list[list[dict]], args: argparse.Namespace, out: Path
) -> tuple[float, int]:
    """The plain recipe: chat template, tokenize, DataCollatorForSeq2Seq, Trainer."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from medstore.training.models import load_base_model

    base = load_base_model(args.base_model)
    tokenizer = base.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    features = []
    for messages in rows:
        ids = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False),
                        add_special_tokens=False)["input_ids"][: args.max_seq_len]  # fmt: skip
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids})
    model = get_peft_model(
        base.model,
        LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    tokens = 0

    class Counting(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            nonlocal tokens
            tokens += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    trainer = Counting(
        model=model,
        args=TrainingArguments(
            output_dir=str(out / "baseline-run"),
            per_device_train_batch_size=args.batch_size,
            max_steps=args.train_steps,
            learning_rate=2e-4,
            bf16=args.bf16,
            use_cpu=args.device == "cpu",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_steps=10_000,
            seed=42,
        ),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        train_dataset=features,
    )
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return elapsed, tokens


def medstore_trainer(data_dir: Path, args: argparse.Namespace, out: Path) -> tuple[float, int]:
    from medstore.training.config import TrainConfig
    from medstore.training.trainer import train
    from medstore.warehouse.store import Warehouse

    config = TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(out / "medstore-run"),
        base_model=args.base_model,
        batch_size=args.batch_size,
        max_seq_len=args.max_seq_len,
        max_steps=args.train_steps,
        bf16=args.bf16,
        progress=False,
    )
    with Warehouse(out / "train.db") as warehouse:
        result = train(warehouse, config)
    return result.metrics["runtime_s"], int(result.metrics["tokens_trained"])


def bench_train(db: Path, out: Path, args: argparse.Namespace) -> list[tuple[str, float, int]]:
    from medstore.recipes.consult import ConsultRecipe
    from medstore.training.data import load_training_data
    from medstore.training.export import export_dataset
    from medstore.warehouse.store import Warehouse

    rows_needed = args.batch_size * args.train_steps
    small = out / "train-db.db"
    build_warehouse(small, rows_needed)
    with Warehouse(small) as warehouse:
        export_dataset(warehouse, ConsultRecipe(), "jsonl", out / "train-data", split_ratio=1.0)
    rows = load_training_data(out / "train-data").splits["train"]
    # Warm-up (allocator, kernels) so neither measured run pays for being first.
    warm = argparse.Namespace(**{**vars(args), "train_steps": 1})
    baseline_trainer(rows, warm, out)
    # Alternate the two, --repeats times, and keep each one's fastest run: a short GPU run
    # varies by tens of percent from one launch to the next.
    plain, ours = [], []
    for repeat in range(args.repeats):
        (out / f"plain-{repeat}").mkdir(parents=True, exist_ok=True)
        (out / f"medstore-{repeat}").mkdir(parents=True, exist_ok=True)
        plain.append(baseline_trainer(rows, args, out / f"plain-{repeat}"))
        ours.append(medstore_trainer(out / "train-data", args, out / f"medstore-{repeat}"))
    return [
        ("baseline: plain transformers Trainer", *min(plain)),
        ("cli.py train (medstore.training.train)", *min(ours)),
    ]


def table(title: str, unit: str, results: list[tuple[str, float, int]]) -> None:
    baseline_rate = results[0][2] / results[0][1]
    print(f"\n{title}")
    print(f"| what | seconds | {unit} | {unit}/s | ratio to baseline (rate) |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, count in results:
        rate = count / seconds
        print(f"| {name} | {seconds:.2f} | {count:,} | {rate:,.0f} | {rate / baseline_rate:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--base-model", default="bundled")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; fastest kept")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        if not args.skip_export:
            seconds = build_warehouse(out / "w.db", args.samples)
            print(f"synthetic warehouse: {args.samples:,} accepted samples in {seconds:.1f} s")
            table(f"Export of {args.samples:,} samples", "rows", bench_export(out / "w.db", out))
        if not args.skip_train:
            import torch

            device = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
            table(
                f"LoRA training, {args.base_model}, {device}, bf16={args.bf16}, batch "
                f"{args.batch_size}, {args.train_steps} steps, max {args.max_seq_len} tokens",
                "tokens",
                bench_train(out / "w.db", out, args),
            )
    print(json.dumps({"argv": sys.argv[1:]}))


if __name__ == "__main__":
    main()
