"""The baseline of bench_train_trl.py: a plain TRL script, as its documentation writes one.

SFTTrainer with a peft LoraConfig on a prompt/completion JSONL (completion-only loss, TRL's
own tokenization and collator), nothing of medstore imported. Prints one JSON line: the
training seconds and the non-padding tokens its steps consumed.

Run: python benchmarks/plain_trl_sft.py --data rows.jsonl --model MODEL_FOLDER --steps 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


class CountingSFTTrainer(SFTTrainer):
    """Counts the tokens of each training step the way medstore's trainer does."""

    tokens_trained = 0

    def training_step(self, model, inputs, *args, **kwargs):
        mask = inputs.get("attention_mask")
        self.tokens_trained += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
        return super().training_step(model, inputs, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=4096)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    dataset = load_dataset("json", data_files=args.data, split="train")
    with tempfile.TemporaryDirectory() as out:
        trainer = CountingSFTTrainer(
            model=model,
            args=SFTConfig(
                output_dir=out,
                per_device_train_batch_size=args.batch_size,
                max_steps=args.steps,
                max_length=args.max_seq_len,
                learning_rate=2e-4,
                gradient_checkpointing=args.gradient_checkpointing,
                use_cpu=not torch.cuda.is_available(),
                # TRL's SFTConfig defaults to bf16=True; bf16 autocast on a CPU without native
                # bf16 is ~25x slower than float32 here, and medstore trains float32 on a CPU.
                bf16=torch.cuda.is_available(),
                save_strategy="no",
                report_to="none",
                logging_steps=1,
                disable_tqdm=True,
                seed=42,
            ),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=LoraConfig(
                r=16,
                lora_alpha=32,
                lora_dropout=0.05,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                task_type="CAUSAL_LM",
            ),
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    print(json.dumps({"runtime_s": seconds, "tokens_trained": trainer.tokens_trained}))


if __name__ == "__main__":
    main()
