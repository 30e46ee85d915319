"""`serve` over HTTP with httpx: canned queries, metadata and facets, provenance pages, reviewer
verdicts (auth and CSRF), charts, and serving while a run writes. The warehouse is a real consult
run against the fake teacher server (tests/teachers_serve.py)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.events import Envelope, ExportWritten, TrainingLogged, TrainingStarted
from medstore.warehouse.hashing import canonical_json
from medstore.warehouse.store import Warehouse

from .fakeserver import serve as fake_teacher
from .teachers_serve import (
    RARE_WORD,
    ScriptedTeacher,
    ServeProcess,
    build_warehouse,
    copy_warehouse,
    write_scenarios,
)

TOKEN = "test-review-token"
STAGES = ["profile", "dialogue", "reasoning", "expert"]


@pytest.fixture(scope="session")
def source_db(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("consult"))


@pytest.fixture
def db(source_db, tmp_path) -> Path:
    return copy_warehouse(source_db, tmp_path / "warehouse.db")


@pytest.fixture(scope="module")
def reader(source_db, tmp_path_factory):
    """One server for the read-only checks."""
    db = copy_warehouse(source_db, tmp_path_factory.mktemp("reader") / "warehouse.db")
    with ServeProcess(db, "--review-token", TOKEN) as server:
        yield httpx.Client(base_url=server.base_url, timeout=30)


def rows(client: httpx.Client, query: str, **params: str) -> list[dict]:
    response = client.get(f"/warehouse/{query}.json", params={"_shape": "array", **params})
    assert response.status_code == 200, response.text
    return response.json()


def sample_ids(client: httpx.Client) -> set[str]:
    return {row["sample_id"] for row in rows(client, "samples")}


# Canned queries ---------------------------------------------------------------------------------
def test_failures_by_reason(reader) -> None:
    assert rows(reader, "failures_by_reason") == [
        {
            "recipe": "consult",
            "outcome": "rejected",
            "reason": "expert: invalid after 2 repairs",
            "tasks": 1,
        }
    ]


def test_repair_success_rate_per_stage(reader) -> None:
    by_stage = {row["stage"]: row for row in rows(reader, "repair_success_by_stage")}
    assert set(by_stage) == set(STAGES)
    expert = by_stage["expert"]
    # case-01 was repaired and passed; case-02 was repaired twice and still failed.
    assert expert["stage_runs"] == 6
    assert expert["needed_repair"] == 2 and expert["repaired_then_passed"] == 1
    assert expert["repair_success_pct"] == 50.0 and expert["repair_attempts"] == 3
    assert by_stage["profile"]["needed_repair"] == 0
    assert by_stage["profile"]["stage_pass_pct"] == 100.0


def test_label_balance(reader) -> None:
    balance = {
        row["label"]: (row["samples"], row["share_pct"]) for row in rows(reader, "label_balance")
    }
    assert balance == {"high": (2, 40.0), "moderate": (2, 40.0), "low": (1, 20.0)}


def test_cost_and_tokens_by_run_and_model(reader) -> None:
    [run] = rows(reader, "cost_by_run_and_model")
    assert run["model"] == "fake-model" and run["backend"] == "openai"
    # 6 tasks x 4 stages + 3 repairs = 27 requests; one was answered from the log's cache.
    assert run["calls"] == 27 and run["answered"] + run["cache_replays"] == 27
    assert run["errors"] == 1  # the scripted HTTP 500, retried
    assert run["input_tokens"] > 0 and run["output_tokens"] > 0


def test_slowest_calls_sorted(reader) -> None:
    calls = rows(reader, "slowest_calls")
    latencies = [row["latency_ms"] for row in calls]
    # Every answered call, not cache replays. Whether the second of case-02's identical repair
    # requests is replayed depends on the writer having committed the first answer: 26 or 27.
    [answered] = rows(reader, "cost_by_run_and_model")
    assert len(calls) == answered["answered"] and answered["answered"] in (26, 27)
    assert latencies == sorted(latencies, reverse=True)


def test_samples_awaiting_review(reader) -> None:
    assert {row["sample_id"] for row in rows(reader, "samples_awaiting_review")} == sample_ids(
        reader
    )
    assert len(rows(reader, "samples_awaiting_review", recipe="consult")) == 5
    assert rows(reader, "samples_awaiting_review", recipe="medec-safe") == []


def test_search_across_raw_outputs(reader) -> None:
    [hit] = rows(reader, "search_raw_outputs", text=RARE_WORD)
    assert hit["stage"] == "reasoning" and hit["task_key"] == "consult:case-04:v1"
    assert f"[{RARE_WORD}]" in hit["excerpt"]
    assert hit["sample_id"] in sample_ids(reader)
    # Stemmed words: "contraindications" finds the "contraindication" of every reasoning output.
    hits = rows(reader, "search_raw_outputs", text="contraindications")
    assert {hit["stage"] for hit in hits} == {"reasoning"} and len(hits) >= 5
    assert rows(reader, "search_raw_outputs", text="") == []
    assert rows(reader, "search_raw_outputs", text='"unbalanced quote') == []


# Metadata, facets, cells ------------------------------------------------------------------------
def test_every_table_and_view_has_title_and_description(reader) -> None:
    metadata = reader.get("/-/metadata.json").json()
    tables = metadata["databases"]["warehouse"]["tables"]
    listed = reader.get("/warehouse.json").json()
    names = {t["name"] for t in listed["tables"] if not t["hidden"]}
    names |= {v["name"] for v in listed["views"]}
    assert names <= set(tables)
    for name in names:
        assert tables[name]["title"] and tables[name]["description"], name
    assert tables["samples"]["facets"] == ["recipe", "label", "review_verdict"]
    assert "sample_id" in tables["samples"]["columns"]
    assert TOKEN not in json.dumps(metadata)


def test_default_facets_on_samples_and_calls(reader) -> None:
    facets = reader.get("/warehouse/samples.json").json()["facet_results"]
    labels = {item["value"]: item["count"] for item in facets["label"]["results"]}
    assert labels == {"high": 2, "moderate": 2, "low": 1}
    calls = reader.get("/warehouse/llm_calls.json").json()["facet_results"]
    assert {item["value"] for item in calls["stage"]["results"]} == set(STAGES)
    errors = reader.get("/warehouse/llm_errors.json").json()["facet_results"]
    assert [item["value"] for item in errors["error_type"]["results"]] == ["server_error"]


def test_sample_ids_link_to_provenance_and_json_is_pretty(reader) -> None:
    page = reader.get("/warehouse/samples").text
    for sample_id in sample_ids(reader):
        assert f'href="/-/medstore/sample/{sample_id}"' in page
    events = reader.get("/warehouse/events", params={"event_type": "llm_request"}).text
    assert 'class="medstore-json"' in events and "&#34;messages&#34;: [" in events
    awaiting = reader.get("/warehouse/samples_awaiting_review").text
    assert 'class="medstore-sample"' in awaiting


# Provenance -------------------------------------------------------------------------------------
def test_provenance_page_shows_every_step_in_order(reader) -> None:
    [row] = rows(reader, "samples", task_key="consult:case-01:v1")
    sample_id = row["sample_id"]
    page = reader.get(f"/-/medstore/sample/{sample_id}")
    assert page.status_code == 200
    kinds = re.findall(r'data-event-type="([a-z_]+)" data-stage="([a-z]*)"', page.text)
    assert kinds[0] == ("task_started", "")
    assert [stage for kind, stage in kinds if kind == "llm_request"] == [*STAGES, "expert"]
    expert = [kind for kind, stage in kinds if stage == "expert"]
    assert expert == [
        "llm_request",
        "llm_response",
        "parse_failed",
        "repair_requested",
        "llm_request",
        "llm_response",
        "validation_verdict",
    ]
    assert kinds[-1] == ("sample_accepted", "")
    assert "Write the patient profile" in page.text  # a rendered prompt
    assert "not json" in page.text  # the unparseable raw output
    assert "In the dataset." in page.text
    story = reader.get(f"/-/medstore/sample/{sample_id}.json").json()
    assert [s["stage"] for s in story["stages"]] == STAGES
    assert story["stages"][3] == {
        "stage": "expert",
        "calls": 2,
        "repairs": 1,
        "errors": 0,
        "verdict": "passed",
    }
    assert story["sample"]["case_id"] == "case-01"


def test_provenance_shows_retried_errors(reader) -> None:
    [row] = rows(reader, "samples", task_key="consult:case-03:v1")
    story = reader.get(f"/-/medstore/sample/{row['sample_id']}.json").json()
    errors = [e for e in story["events"] if e["event_type"] == "llm_error"]
    assert len(errors) == 1 and errors[0]["stage"] == "dialogue"
    assert "server_error" in errors[0]["headline"]


def test_unknown_sample_is_404(reader) -> None:
    response = reader.get("/-/medstore/sample/s-0000000000000000")
    assert response.status_code == 404 and "no sample with id" in response.text


def test_provenance_lists_exports_and_training_that_used_it(db) -> None:
    with Warehouse(db) as warehouse:
        if not warehouse.query("SELECT 1 FROM sqlite_master WHERE name = 'sample_exports'"):
            pytest.skip("the sample_exports view (export area) is not installed")
        ids = [row["sample_id"] for row in warehouse.query("SELECT sample_id FROM samples")]
        export = ExportWritten(
            export_id="x-1",
            recipe="consult",
            format="jsonl",
            out_dir="exports/consult",
            view="samples",
            include_fallbacks=False,
            split_ratio=0.9,
            counts={"train": 4, "validation": 1},
            manifest_hash="b2:m",
            data_hash="b2:d",
            sample_ids_hash="b2:s",
            sample_ids=canonical_json(ids[:2]),
        )
        training = TrainingStarted(
            training_run_id="t-1",
            base_model="bundled",
            method="lora",
            config={},
            data_dir="exports/consult",
            data_fingerprint="f",
            export_id="x-1",
            code_version="test",
        )
        warehouse.append([(export, Envelope(recipe="consult")), (training, Envelope())])
    with ServeProcess(db, "--review-token", TOKEN) as server:
        used = httpx.get(f"{server.base_url}/-/medstore/sample/{ids[0]}.json").json()
        unused = httpx.get(f"{server.base_url}/-/medstore/sample/{ids[2]}.json").json()
    assert [e["event_type"] for e in used["events"]][-2:] == ["export_written", "training_started"]
    assert "exported as jsonl to exports/consult" in used["events"][-2]["headline"]
    assert not {"export_written", "training_started"} & {e["event_type"] for e in unused["events"]}


# Reviewer verdicts ------------------------------------------------------------------------------
def test_reviews_need_the_token_and_a_reject_drops_the_sample(db) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        client = httpx.Client(base_url=server.base_url)
        target = sorted(sample_ids(client))[0]
        url = f"/-/medstore/sample/{target}/review"
        form = {"verdict": "reject", "note": "dialogue contradicts profile"}
        assert client.post(url, data=form).status_code == 403
        wrong = client.post(url, data=form, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        assert target in sample_ids(client)

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        done = client.post(url, data={**form, "reviewer": "dr-lee"}, headers=bearer)
        assert done.status_code == 200 and done.json()["ok"] is True
        assert target not in sample_ids(client)
        [rejected] = rows(client, "rejected_by_reviewers")
        assert rejected["sample_id"] == target and rejected["reviewer"] == "dr-lee"
        assert target not in {r["sample_id"] for r in rows(client, "samples_awaiting_review")}
        story = client.get(f"/-/medstore/sample/{target}.json").json()
        assert story["events"][-1]["event_type"] == "review_verdict"
        assert story["status"]["reasons"] == ["rejected by reviewer dr-lee"]

        bad = client.post(url, data={"verdict": "maybe"}, headers=bearer)
        assert bad.status_code == 400 and "verdict must be one of" in bad.json()["error"]
        again = client.post(url, data={"verdict": "accept"}, headers=bearer)
        assert again.status_code == 200
        assert target in sample_ids(client)
    with Warehouse(db) as warehouse:
        assert warehouse.verify().ok


def test_browser_login_and_csrf(db) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        client = httpx.Client(base_url=server.base_url)
        target = sorted(sample_ids(client))[1]
        login_page = client.get("/-/medstore/login")
        csrftoken = re.search(r'name="csrftoken" value="([^"]+)"', login_page.text).group(1)
        refused = client.post(
            "/-/medstore/login",
            data={"reviewer": "ana", "token": "guess", "csrftoken": csrftoken, "next": "/"},
        )
        assert refused.status_code == 403 and "not the review token" in refused.text
        logged_in = client.post(
            "/-/medstore/login",
            data={"reviewer": "ana", "token": TOKEN, "csrftoken": csrftoken, "next": "/x"},
        )
        assert logged_in.status_code == 302 and logged_in.headers["location"] == "/x"
        assert "ds_actor" in client.cookies

        page = client.get(f"/-/medstore/sample/{target}")
        assert 'id="review-submit"' in page.text
        form_token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
        url = f"/-/medstore/sample/{target}/review"
        no_csrf = client.post(url, data={"verdict": "reject", "note": "n"})
        assert no_csrf.status_code == 403 and target in sample_ids(client)
        ok = client.post(url, data={"verdict": "reject", "note": "n", "csrftoken": form_token})
        assert ok.status_code == 302 and target not in sample_ids(client)
        assert rows(client, "review_verdicts")[0]["reviewer"] == "ana"


def test_serve_prints_a_generated_token_or_uses_the_environment(db) -> None:
    with ServeProcess(db, env={"MEDSTORE_REVIEW_TOKEN": ""}) as server:
        pass
    [line] = [line for line in server.output if line.startswith("review token")]
    generated = line.rsplit(" ", 1)[1]
    assert len(generated) >= 20
    with ServeProcess(db, env={"MEDSTORE_REVIEW_TOKEN": "from-env"}) as server:
        client = httpx.Client(base_url=server.base_url)
        target = sorted(sample_ids(client))[2]
        url = f"/-/medstore/sample/{target}/review"
        bearer = {"Authorization": "Bearer from-env"}
        assert client.post(url, data={"verdict": "accept"}, headers=bearer).status_code == 200
    assert not any(line.startswith("review token") for line in server.output)


# Charts -----------------------------------------------------------------------------------------
def test_charts_page_and_training_loss(db) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        page = httpx.get(server.base_url + "/-/medstore/charts").text
        drawn = re.findall(
            r'id="chart-([a-z]+)">(?:(?!</section>).)*medstore-chart-svg', page, re.S
        )
        # The issue asked for outcomes over time, tokens and cost per run and per stage.
        assert drawn == ["outcomes", "failures", "runs", "stages", "labels", "events"]
        assert "consult: expert: invalid after 2 repairs" in page
        assert "rejected: expert: differential_diagnosis.icd10_code" in page  # a failure kind
        assert "No training runs logged yet" in page
        assert "No judge scores yet" in page
        # People's numbers: thousands as 5.2k, never 5.234e+03; runs named with their recipe.
        assert re.search(r"\d(\.\d)?k in \+ \d", page) and "e+0" not in page
        assert re.search(r"consult · \d\d-\d\d \d\d:\d\d · [0-9a-f]{8}", page)
        assert "2 samples (40% of consult)" in page and "1 sample (20% of consult)" in page
        with Warehouse(db) as warehouse:
            warehouse.append(
                (
                    TrainingLogged(training_run_id="t-1", step=step, loss=2.0 / step),
                    Envelope(run_id="t-1"),
                )
                for step in range(1, 11)
            )
        page = httpx.get(server.base_url + "/-/medstore/charts").text
        assert page.count("medstore-chart-svg") == 7 and "t-1 loss" in page


# Serving next to a run --------------------------------------------------------------------------
def test_serving_never_blocks_a_run_and_shows_new_events(db, tmp_path) -> None:
    """A second run writes 6 new tasks while the server is read in a tight loop."""
    more = write_scenarios(tmp_path / "more.json", 6)
    scenarios = json.loads(more.read_text())
    for scenario in scenarios:
        scenario["id"] = scenario["id"].replace("case", "extra")
    more.write_text(json.dumps(scenarios))
    with ServeProcess(db, "--review-token", TOKEN) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        before = len(sample_ids(client))
        statuses: list[int] = []
        stop = threading.Event()

        def browse() -> None:
            while not stop.is_set():
                statuses.append(client.get("/warehouse/samples.json").status_code)
                statuses.append(client.get("/warehouse/llm_calls.json").status_code)

        browser = threading.Thread(target=browse)
        browser.start()
        try:
            with fake_teacher(latency_s=0.02) as teacher:
                teacher.set_responder(ScriptedTeacher())
                result = CliRunner().invoke(
                    cli,
                    [
                        "run",
                        "--source",
                        str(more),
                        "--base-url",
                        teacher.openai_base_url,
                        "--db",
                        str(db),
                        "--retry-base-delay",
                        "0",
                        "--no-progress",
                    ],
                    catch_exceptions=False,
                )
        finally:
            stop.set()
            browser.join()
        assert "5 accepted, 1 rejected" in result.output
        assert statuses and set(statuses) == {200}
        assert len(sample_ids(client)) == before + 5
        # The derived search index catches up within its refresh interval.
        for _ in range(50):
            if len(rows(client, "search_raw_outputs", text=RARE_WORD)) == 2:
                break
            threading.Event().wait(0.1)
        assert len(rows(client, "search_raw_outputs", text=RARE_WORD)) == 2


# CLI --------------------------------------------------------------------------------------------
def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_review_command(db) -> None:
    with Warehouse(db) as warehouse:
        target = warehouse.query("SELECT sample_id FROM samples ORDER BY sample_id")[0]["sample_id"]
    result = run_cli(
        "review", target, "--reject", "--note", "wrong code", "--reviewer", "bob", "--db", str(db)
    )
    assert result.exit_code == 0 and f"reject recorded for {target} by bob" in result.output
    with Warehouse(db) as warehouse:
        assert target not in {r["sample_id"] for r in warehouse.query("SELECT * FROM samples")}
        [event] = warehouse.query("SELECT * FROM events WHERE event_type = 'review_verdict'")
        assert event["task_key"] and event["recipe"] == "consult" and event["stage"] == "review"
    back = run_cli("review", target, "--accept", "--db", str(db), "--json")
    assert json.loads(back.output)["verdict"] == "accept"
    with Warehouse(db) as warehouse:
        assert target in {r["sample_id"] for r in warehouse.query("SELECT * FROM samples")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["s-0000000000000000", "--reject"], "no sample with id 's-0000000000000000'"),
        (["s-0000000000000000"], "say --reject or --accept"),
    ],
)
def test_review_command_errors(db, args, message) -> None:
    result = run_cli("review", *args, "--db", str(db))
    assert result.exit_code == 1 and message in result.output
    with Warehouse(db) as warehouse:
        assert not warehouse.query("SELECT 1 FROM events WHERE event_type = 'review_verdict'")


def test_serve_and_review_on_missing_warehouse(tmp_path) -> None:
    missing = str(tmp_path / "nope.db")
    for args in (["serve", "--db", missing], ["review", "s-1", "--reject", "--db", missing]):
        result = run_cli(*args)
        assert result.exit_code == 1 and "no such warehouse" in result.output
    assert not Path(missing).exists()
