"""MIMIC packets over a synthetic demo in real DuckDB: determinism, both releases' language
spellings, cohort order and ages against independent pandas computations, unlinked radiology,
the cache, and bad input (one line, non-zero exit, nothing written)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.sources.mimic.demo import make_demo
from medstore.sources.mimic.duck import MimicDB
from medstore.sources.mimic.packet import (
    RowCaps,
    build_packet,
    build_packets,
    packet_hash,
    packet_json,
)
from medstore.sources.mimic.schema import TABLES

PATIENTS = 12
SEED = 5


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mimic") / "demo"
    make_demo(out, patients=PATIENTS, seed=SEED)
    return out


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch) -> Path:
    """Caches of credentialed data never go to the user's home in tests."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MEDSTORE_MIMIC_CACHE", str(folder))
    return folder


def read(demo: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(demo / f"{table}.csv.gz", keep_default_na=True)


def all_hadm_ids(db: MimicDB) -> list[int]:
    return [row["hadm_id"] for row in db.query("SELECT hadm_id FROM hosp.admissions ORDER BY 1")]


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_demo_is_deterministic_and_official(demo: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_demo(again, patients=PATIENTS, seed=SEED)
    assert tree_digest(again) == tree_digest(demo)
    for table in TABLES.values():  # the official files, columns in the official order
        with gzip.open(demo / table.file, "rt") as handle:
            assert handle.readline().strip().split(",") == table.column_names


def test_packets_are_byte_identical_across_builds(demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    with MimicDB(demo, cache_dir=tmp_path / "c1") as first:
        ids = all_hadm_ids(first)
        one = {h: packet_json(p) for h, p in build_packets(first, ids).items()}
        single = packet_json(build_packet(first, ids[0]))
    with MimicDB(copy, cache_dir=tmp_path / "c2") as second:
        two = {h: packet_json(p) for h, p in build_packets(second, ids).items()}
    assert one == two and single == one[ids[0]]
    args = ["mimic", "packet", "--mimic-dir", str(demo), "--hadm-id", str(ids[0])]
    printed = [CliRunner().invoke(cli, [*args, "--format", "canonical"]).output for _ in "ab"]
    assert printed[0] == printed[1] == one[ids[0]] + "\n"
    digest = CliRunner().invoke(cli, [*args, "--format", "hash"]).output.strip()
    assert digest == packet_hash(build_packets(MimicDB(demo), ids)[ids[0]])


def test_row_caps_keep_abnormal_first_and_count_the_rest(demo: Path) -> None:
    with MimicDB(demo) as db:
        hadm_id = db.query(
            "SELECT hadm_id FROM packet.packet_labs GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )[0]["hadm_id"]
        full = build_packet(db, hadm_id, RowCaps(labs=10_000))
        capped = build_packet(db, hadm_id, RowCaps(labs=5, radiology=0, emar=3))
    labs = capped["labs"]
    assert labs["kept"] == 5 and labs["total"] == full["labs"]["total"] > 5
    assert capped["emar"]["kept"] <= 3 and capped["radiology"]["rows"] == []
    abnormal = [row for row in full["labs"]["rows"] if row["flag"] == "abnormal"]
    assert all(row["flag"] == "abnormal" for row in labs["rows"][: min(5, len(abnormal))])
    times = [row["charttime"] for row in labs["rows"]]
    assert times == sorted(times)  # kept rows are shown in time order


@pytest.mark.parametrize("version", ["2.2", "3.1"])
def test_admissions_language_of_both_releases(tmp_path: Path, version: str) -> None:
    out = tmp_path / f"demo-{version}"
    make_demo(out, patients=10, seed=2, version=version)
    raw = read(out / "hosp", "admissions")
    with MimicDB(out) as db:
        packets = build_packets(db, all_hadm_ids(db))
    read_back = {h: p["admission"]["language"] for h, p in packets.items()}
    expected = {int(r.hadm_id): r.language for r in raw.itertuples()}
    assert read_back == expected
    values = set(expected.values())
    if version == "2.2":
        assert values <= {"ENGLISH", "?"}
    else:  # v3.x spells languages out, longer than v2.2's VARCHAR(10)
        assert "ENGLISH" not in values and max(len(v) for v in values) > 10


def test_cohort_matches_pandas(demo: Path, tmp_path: Path, db_path: Path) -> None:
    out = tmp_path / "cohort.csv"
    result = CliRunner().invoke(
        cli,
        [
            "mimic",
            "build-cohort",
            "--mimic-dir",
            str(demo),
            "--limit",
            "7",
            "--out",
            str(out),
            "--db",
            str(db_path),
        ],
    )
    assert result.exit_code == 0, result.output
    admissions = read(demo / "hosp", "admissions")
    counts = admissions.groupby("subject_id").size().reset_index(name="n")
    expected = counts.sort_values(["n", "subject_id"], ascending=[False, True]).head(7)
    written = pd.read_csv(out)
    assert written["subject_id"].tolist() == expected["subject_id"].tolist()
    assert written["admission_count"].tolist() == expected["n"].tolist()
    assert written["cohort_rank"].tolist() == list(range(1, 8))
    conn = sqlite3.connect(db_path)
    payload = conn.execute(
        "SELECT json_extract(payload_json, '$.subject_ids') FROM events"
        " WHERE event_type = 'cohort_built'"
    ).fetchone()[0]
    assert payload == "[" + ",".join(str(s) for s in expected["subject_id"]) + "]"


def test_age_at_admission_the_mimic_way(tmp_path: Path) -> None:
    out = tmp_path / "ages"
    make_demo(out, patients=25, seed=11)
    patients = read(out / "hosp", "patients")
    admissions = read(out / "hosp", "admissions").merge(patients, on="subject_id")
    admissions["year"] = pd.to_datetime(admissions["admittime"]).dt.year
    expected = {
        int(r.hadm_id): int(r.anchor_age + r.year - r.anchor_year) for r in admissions.itertuples()
    }
    assert (patients["anchor_age"] == 91).any()  # the over-89 cap is in the demo
    with MimicDB(out) as db:
        packets = build_packets(db, sorted(expected))
    assert {h: p["demographics"]["age_at_admission"] for h, p in packets.items()} == expected
    capped = {h for h, p in packets.items() if p["demographics"]["age_is_capped"]}
    assert capped == {int(r.hadm_id) for r in admissions.itertuples() if r.anchor_age == 91}


def test_unlinked_radiology_kept_apart(demo: Path) -> None:
    radiology = read(demo / "note", "radiology")
    admissions = read(demo / "hosp", "admissions")
    unlinked = radiology[radiology["hadm_id"].isna()].merge(admissions, on="subject_id")
    inside = unlinked[
        (pd.to_datetime(unlinked["charttime"]) >= pd.to_datetime(unlinked["admittime"]))
        & (pd.to_datetime(unlinked["charttime"]) <= pd.to_datetime(unlinked["dischtime"]))
    ]
    expected: dict[int, list[str]] = {}
    for row in inside.sort_values(["charttime", "note_seq"]).itertuples():
        expected.setdefault(int(row.hadm_id_y), []).append(row.note_id)
    assert expected, "the demo has unlinked radiology within stays"
    outside = set(radiology[radiology["hadm_id"].isna()]["note_id"]) - set(inside["note_id"])
    with MimicDB(demo) as db:
        packets = build_packets(db, all_hadm_ids(db), RowCaps(radiology=1000))
    got = {
        h: [row["note_id"] for row in p["unlinked_radiology"]["rows"]]
        for h, p in packets.items()
        if p["unlinked_radiology"]["rows"]
    }
    assert got == expected
    linked = {row["note_id"] for p in packets.values() for row in p["radiology"]["rows"]}
    assert linked == set(radiology[radiology["hadm_id"].notna()]["note_id"])
    shown = linked | {n for ids in got.values() for n in ids}
    assert not outside & shown  # outpatient films outside every stay appear nowhere


def test_cache_hit_after_miss_and_rebuild_on_change(demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    cache = tmp_path / "cache-x"
    first = MimicDB(copy, cache_dir=cache)
    first.close()
    second = MimicDB(copy, cache_dir=cache)
    second.close()
    assert not first.cache_hit and second.cache_hit and first.path == second.path
    (copy / "hosp" / "services.csv.gz").touch()
    third = MimicDB(copy, cache_dir=cache)
    third.close()
    assert not third.cache_hit and list(cache.glob("*.duckdb")) == [third.path]


# Bad input: one line naming the file/column/id, exit 1, nothing written. ------------------------
def without_column(path: Path, column: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.drop(columns=[column]).to_csv(path, index=False, compression="gzip")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: shutil.rmtree(d), "no such folder"),
        (lambda d: (d / "note" / "discharge.csv.gz").unlink(), "discharge.csv.gz: missing"),
        (
            lambda d: without_column(d / "hosp" / "labevents.csv.gz", "valueuom"),
            "labevents.csv.gz: missing column valueuom",
        ),
    ],
)
def test_bad_mimic_folder(demo: Path, tmp_path: Path, cache_dir: Path, damage, expected) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(demo, broken)
    damage(broken)
    out = tmp_path / "cohort.csv"
    db = tmp_path / "w.db"
    for args in (
        ["mimic", "packet", "--hadm-id", "1"],
        ["mimic", "build-cohort", "--out", str(out), "--db", str(db)],
    ):
        result = CliRunner().invoke(cli, [*args, "--mimic-dir", str(broken)])
        assert result.exit_code == 1, result.output
        assert expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not db.exists()
    assert not list(cache_dir.glob("*")) if cache_dir.exists() else True


def test_unknown_admission_and_full_folder(demo: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["mimic", "packet", "--mimic-dir", str(demo), "--hadm-id", "29999999999"]
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: hadm_id 29999999999: not in {demo}/hosp/admissions.csv.gz"
    )
    result = CliRunner().invoke(cli, ["mimic", "make-demo", "--out", str(demo)])
    assert result.exit_code == 1 and "not empty" in result.output
