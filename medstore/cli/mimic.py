"""`cli.py mimic ...`: a synthetic demo dataset, the cohort, one packet, per-patient artifacts."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import click

from medstore.cli.options import CONTEXT, open_warehouse
from medstore.hookspecs import hookimpl
from medstore.sources.mimic import MIMIC_DIR_ENV
from medstore.warehouse.hashing import content_hash


def source_options(fn: Callable) -> Callable:
    fn = click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        help="Where the DuckDB cache lives [$MEDSTORE_MIMIC_CACHE or ~/.cache/medstore/mimic].",
    )(fn)
    fn = click.option(
        "--note-dir",
        type=click.Path(),
        help="MIMIC-IV-Note root holding note/ [default: --mimic-dir].",
    )(fn)
    return click.option(
        "--mimic-dir",
        type=click.Path(),
        envvar=MIMIC_DIR_ENV,
        required=True,
        help=f"MIMIC-IV root holding hosp/ and icu/ [${MIMIC_DIR_ENV}].",
    )(fn)


def open_mimic(mimic_dir: str, note_dir: str | None, cache_dir: str | None):
    from medstore.sources.mimic.duck import MimicDataError, MimicDB

    try:
        return MimicDB(mimic_dir, note_dir, cache_dir=cache_dir)
    except MimicDataError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings=CONTEXT)
def mimic() -> None:
    """MIMIC-IV: demo data, cohort, admission packets and artifacts for `mimic-dialogue`.

    MIMIC-IV is credentialed data: packets go only to the embedded model or a server on
    localhost unless `run` names a host with --allow-remote-host.

    \b
    Example:
        python cli.py mimic make-demo --out demo-mimic --patients 20
        python cli.py mimic build-cohort --mimic-dir demo-mimic --limit 5
        python cli.py run --recipe mimic-dialogue --mimic-dir demo-mimic --subject-id S
        python cli.py mimic artifacts --subject-id S --out exports/mimic
    """


@mimic.command("make-demo", context_settings=CONTEXT)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder.")
@click.option("--patients", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--version",
    "mimic_version",
    type=click.Choice(["3.1", "2.2"]),
    default="3.1",
    show_default=True,
    help="Which release's spellings (admissions.language, insurance) to imitate.",
)
def make_demo_command(out: str, patients: int, seed: int, mimic_version: str) -> None:
    """Write a synthetic MIMIC-IV + MIMIC-IV-Note extract with the official files and columns.

    Deterministic for a seed; clinically coherent; with the real data's traps (several
    admissions per patient, admissions without a discharge note, radiology notes with no
    hadm_id, anchor_age 91, empty strings). Contains no real patient data.

    \b
    Example:
        python cli.py mimic make-demo --out demo-mimic --patients 100 --seed 7
        python cli.py mimic make-demo --out demo-v22 --version 2.2
    """
    from medstore.sources.mimic.demo import make_demo

    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise click.ClickException(f"{out}: already exists and is not empty (pick a new folder)")
    counts = make_demo(target, patients=patients, seed=seed, version=mimic_version)
    click.echo(
        f"wrote {target} (MIMIC-IV {mimic_version} layout): {counts['hosp.patients']} patients, "
        f"{counts['hosp.admissions']} admissions, {counts['note.discharge']} discharge notes, "
        f"{counts['note.radiology']} radiology notes"
    )


@mimic.command("build-cohort", context_settings=CONTEXT)
@source_options
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="CSV to write [default: exports/top<N>_by_admission_count.csv].",
)
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Warehouse file.")
def build_cohort(
    mimic_dir: str,
    note_dir: str | None,
    cache_dir: str | None,
    limit: int,
    out: str | None,
    db_path: str | None,
) -> None:
    """The top-N patients by admission count (ties: lower subject_id first), as a CSV under
    exports/, recorded as a `cohort_built` event.

    \b
    Example:
        python cli.py mimic build-cohort --mimic-dir ~/mimic-iv-3.1 --limit 1000
    """
    from medstore.sources.mimic.packet import cohort
    from medstore.warehouse.events import CohortBuilt, Envelope

    with open_mimic(mimic_dir, note_dir, cache_dir) as db:
        rows = cohort(db, limit)
        sources = db.describe()
    columns = ["cohort_rank", "subject_id", "admission_count", "first_admittime", "last_admittime"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue()
    path = Path(out or f"exports/top{limit}_by_admission_count.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    with open_warehouse(db_path) as warehouse:
        warehouse.append(
            [
                (
                    CohortBuilt(
                        limit=limit,
                        subject_ids=[row["subject_id"] for row in rows],
                        out_path=str(path),
                        csv_hash=content_hash(text),
                        source_files=sources,
                    ),
                    Envelope(recipe="mimic-dialogue"),
                )
            ]
        )
    click.echo(f"wrote {path}: {len(rows)} patients (top by admission count)")


@mimic.command("packet", context_settings=CONTEXT)
@source_options
@click.option("--hadm-id", type=int, required=True, help="The admission.")
@click.option("--row-cap-labs", type=click.IntRange(min=0), default=120, show_default=True)
@click.option("--row-cap-radiology", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--row-cap-emar", type=click.IntRange(min=0), default=120, show_default=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "canonical", "prompt", "hash"]),
    default="json",
    show_default=True,
    help="Indented JSON, the one-line canonical JSON that is hashed, the prompt text, or the hash.",
)
def packet_command(
    mimic_dir: str,
    note_dir: str | None,
    cache_dir: str | None,
    hadm_id: int,
    row_cap_labs: int,
    row_cap_radiology: int,
    row_cap_emar: int,
    output_format: str,
) -> None:
    """Print the deterministic packet of one admission (same input, same bytes).

    \b
    Example:
        python cli.py mimic packet --mimic-dir demo-mimic --hadm-id 21234567
        python cli.py mimic packet --mimic-dir demo-mimic --hadm-id 21234567 --format prompt
    """
    from medstore.sources.mimic.duck import MimicDataError
    from medstore.sources.mimic.packet import RowCaps, build_packet, packet_hash, packet_json
    from medstore.sources.mimic.render import render_packet

    caps = RowCaps(labs=row_cap_labs, radiology=row_cap_radiology, emar=row_cap_emar)
    with open_mimic(mimic_dir, note_dir, cache_dir) as db:
        try:
            packet = build_packet(db, hadm_id, caps)
        except MimicDataError as exc:
            raise click.ClickException(str(exc)) from exc
    if output_format == "canonical":
        click.echo(packet_json(packet))
    elif output_format == "prompt":
        click.echo(render_packet(packet))
    elif output_format == "hash":
        click.echo(packet_hash(packet))
    else:
        click.echo(json.dumps(packet, indent=2, sort_keys=True, ensure_ascii=False))


@mimic.command("artifacts", context_settings=CONTEXT)
@click.option("--subject-id", type=int, required=True, help="The patient.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="exports/mimic",
    show_default=True,
    help="Folder that receives <SUBJECT_ID>/ (replaced if present).",
)
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Warehouse file.")
def artifacts_command(subject_id: int, out: str, db_path: str | None) -> None:
    """Write a patient's per-admission artifacts from the event log alone (identical on every
    regeneration): packets, prompts, model calls, raw outputs, conversations, summaries.

    \b
    Example:
        python cli.py mimic artifacts --subject-id 10000032 --out exports/mimic
    """
    from medstore.sources.mimic.artifacts import ArtifactsError, write_patient_artifacts

    with open_warehouse(db_path, must_exist=True) as warehouse:
        try:
            target = write_patient_artifacts(warehouse, subject_id, out)
        except ArtifactsError as exc:
            raise click.ClickException(str(exc)) from exc
    files = sum(1 for path in target.rglob("*") if path.is_file())
    click.echo(f"wrote {target}: {files} files")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(mimic)
