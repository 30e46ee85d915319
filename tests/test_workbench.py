"""The curator's workbench over HTTP (real `cli.py serve`, real SQLite): a page for every task
whatever its state, failure kinds that facet, the review queue (filters, progress, one at a
time, bulk verdicts), readable and escaped samples, and search over samples. The warehouse is
the scripted consult run (tests/teachers_serve.py) plus a failed, an in-flight and a hostile
task appended as real events."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
import pytest
from datasette.utils import tilde_encode

from medstore.warehouse.events import (
    Envelope,
    SampleAccepted,
    TaskFailed,
    TaskStarted,
    ValidationVerdict,
)
from medstore.warehouse.hashing import canonical_json
from medstore.warehouse.store import Warehouse

from .teachers_serve import ServeProcess, build_warehouse, copy_warehouse

TOKEN = "workbench-token"
REJECTED = "consult:case-02:v1"
HOSTILE = {
    "case_id": "case-x",
    "specialty": "dermatology",
    "dialogue": [
        {"speaker": "doctor", "text": "What brings you in?"},
        {"speaker": "patient", "text": "A rash <b>here</b> **since Monday**."},
    ],
    "expert_output_text": "Reasoning with <script>alert('x')</script> and a "
    "[link](javascript:alert(1)).",
}


def task_url(task_key: str, recipe: str = "consult") -> str:
    return f"/-/medstore/task/{recipe}/{task_key}"


def add_edge_tasks(db: Path) -> None:
    """A failed task, one still in flight, one with junk check errors, a hostile sample."""
    with Warehouse(db) as warehouse:
        envelope = Envelope(run_id="run-x", recipe="consult")
        events = []
        for key, tail in (
            ("consult:case-failed:v1", [TaskFailed(reason="timeout", message="expert: timed out")]),
            ("consult:case-pending:v1", []),
            ("consult:case-x:v1", [SampleAccepted(
                sample_id="s-hostile", content_hash="h-x", sample=canonical_json(HOSTILE),
                label="low")]),
        ):  # fmt: skip
            task = Envelope(run_id="run-x", recipe="consult", task_key=key)
            events.append((TaskStarted(source_id=key, source_record="{}"), task))
            events += [(event, task) for event in tail]
        junk = Envelope(run_id="run-x", recipe="consult", task_key="consult:case-junk:v1",
                        stage="conversation", attempt=0)  # fmt: skip
        errors = ["turns.12.text: empty", "no colon in this one", "a.b.0: x", "", ": lead"]
        events.append((ValidationVerdict(passed=False, errors=errors), junk))
        events.append((TaskStarted(source_id="x", source_record="{}"), envelope))
        warehouse.append(events)


@pytest.fixture(scope="module")
def source_db(tmp_path_factory) -> Path:
    db = build_warehouse(tmp_path_factory.mktemp("workbench"))
    add_edge_tasks(db)
    return db


@pytest.fixture(scope="module")
def reader(source_db, tmp_path_factory):
    db = copy_warehouse(source_db, tmp_path_factory.mktemp("reader") / "warehouse.db")
    with ServeProcess(db, "--review-token", TOKEN) as server:
        yield httpx.Client(base_url=server.base_url, timeout=30)


@pytest.fixture
def writer(source_db, tmp_path):
    db = copy_warehouse(source_db, tmp_path / "warehouse.db")
    with ServeProcess(db, "--review-token", TOKEN) as server:
        yield httpx.Client(base_url=server.base_url, timeout=30), db


def rows(client: httpx.Client, table: str, **params: str) -> list[dict]:
    response = client.get(f"/warehouse/{table}.json", params={"_shape": "array", **params})
    assert response.status_code == 200, response.text
    return response.json()


def login(client: httpx.Client) -> str:
    """Log in as reviewer dr-kim; returns a CSRF token for the next form."""
    page = client.get("/-/medstore/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/-/medstore/login",
        data={"reviewer": "dr-kim", "token": TOKEN, "csrftoken": token, "next": "/"},
    )
    assert response.status_code == 302
    return token


# Failure kinds -----------------------------------------------------------------------------------
def test_failure_kinds_normalise_fields_and_keep_the_message(reader) -> None:
    junk = rows(reader, "check_failures", task_key="consult:case-junk:v1", _sort="error_index")
    assert [(row["failure_kind"], row["message"]) for row in junk] == [
        ("conversation: turns.text", "turns.12.text: empty"),  # list positions dropped
        ("conversation: no colon in this one", "no colon in this one"),
        ("conversation: a", "a.b.0: x"),
        ("conversation: ", ""),
        ("conversation: : lead", ": lead"),
    ]
    [verdict] = rows(reader, "validation_verdicts", task_key=REJECTED, attempt="2")
    assert verdict["failure_kind"] == "expert: differential_diagnosis.icd10_code"


def test_task_outcomes_say_why_and_facet_by_kind(reader) -> None:
    by_key = {row["task_key"]: row for row in rows(reader, "task_outcomes")}
    rejected = by_key[REJECTED]
    assert rejected["state"] == "rejected"
    assert rejected["failure_kind"] == "expert: differential_diagnosis.icd10_code"
    assert "'Z99.999' is not an ICD-10-CM code" in rejected["message"]
    assert by_key["consult:case-failed:v1"]["failure_kind"] == "timeout"
    assert by_key["consult:case-failed:v1"]["message"] == "expert: timed out"
    assert by_key["consult:case-pending:v1"]["state"] == "pending"
    assert by_key["consult:case-01:v1"]["failure_kind"] is None  # accepted (after a repair)
    facets = reader.get("/warehouse/task_outcomes.json").json()["facet_results"]
    kinds = {item["value"]: item["count"] for item in facets["failure_kind"]["results"]}
    assert kinds == {"expert: differential_diagnosis.icd10_code": 1, "timeout": 1}


def test_task_keys_link_to_the_task_page(reader) -> None:
    for table in ("task_outcomes", "task_state", "validation_verdicts", "llm_calls"):
        page = reader.get(f"/warehouse/{table}", params={"task_key": REJECTED}).text
        assert f'href="/-/medstore/task/consult/{tilde_encode(REJECTED)}"' in page, table


# The task page ----------------------------------------------------------------------------------
def test_a_rejected_task_tells_its_whole_story(reader) -> None:
    page = reader.get(task_url(REJECTED))
    assert page.status_code == 200
    kinds = re.findall(r'data-event-type="([a-z_]+)" data-stage="([a-z]*)"', page.text)
    assert kinds[0] == ("task_started", "") and kinds[-1] == ("sample_rejected", "")
    assert [stage for kind, stage in kinds if kind == "llm_request"] == [
        "profile", "dialogue", "reasoning", "expert", "expert", "expert"
    ]  # fmt: skip
    outcome = re.search(r'<section id="outcome".*?</section>', page.text, re.S).group(0)
    assert 'data-state="rejected"' in outcome and "expert: invalid after 2 repairs" in outcome
    assert "expert: differential_diagnosis.icd10_code" in outcome
    assert "is not an ICD-10-CM code" in outcome
    assert "Write the patient profile" in page.text  # a rendered prompt
    assert '<pre class="medstore-json">{\n  &#34;differential_diagnosis&#34;: [' in page.text
    assert 'class="medstore-chat"' in page.text  # the dialogue stage's JSON, as a chat
    story = reader.get(task_url(REJECTED) + ".json").json()
    assert story["outcome"]["state"] == "rejected" and story["samples"] == []
    assert story["outcome"]["failures"][0]["kind"] == "expert: differential_diagnosis.icd10_code"


@pytest.mark.parametrize(
    ("task_key", "state", "shown"),
    [
        ("consult:case-failed:v1", "failed", "expert: timed out"),
        ("consult:case-pending:v1", "pending", "in flight"),
        ("consult:case-01:v1", "accepted", "/-/medstore/sample/s-"),
    ],
)
def test_every_state_has_a_page(reader, task_key, state, shown) -> None:
    page = reader.get(task_url(task_key))
    assert page.status_code == 200 and f'data-state="{state}"' in page.text
    outcome = re.search(r'<section id="outcome".*?</section>', page.text, re.S).group(0)
    assert shown in outcome


def test_unknown_task_is_404(reader) -> None:
    assert reader.get(task_url("consult:nope:v1")).status_code == 404
    assert reader.get(task_url(REJECTED, recipe="medec-cot")).status_code == 404


# Readable samples -------------------------------------------------------------------------------
def test_samples_read_as_a_chat_and_markdown_with_html_escaped(reader) -> None:
    page = reader.get("/-/medstore/sample/s-hostile").text
    sample = re.search(r'<section id="sample".*?</section>', page, re.S).group(0)
    assert 'class="medstore-turn medstore-turn-patient"' in sample
    assert "<strong>since Monday</strong>" in sample
    assert "&lt;b&gt;here&lt;/b&gt;" in sample and "<b>here</b>" not in sample
    assert "<script>" not in page.split("<footer")[0].replace("<script>\ndocument", "")
    assert "&lt;script&gt;alert" in sample
    assert 'href="javascript:' not in page
    # The sample comes before the verdict form, and no verdict is chosen for the reviewer.
    assert page.index('id="sample"') < page.index('id="review"')


def test_samples_table_shows_the_summary_first(reader) -> None:
    page = reader.get("/warehouse/samples", params={"task_key": "consult:case-x:v1"}).text
    cell = re.search(r'<td class="col-sample_id.*?</td>', page, re.S).group(0)
    assert cell.index("dermatology · 2 turns · patient: A rash") < cell.index("s-hostile")


def test_search_samples_and_the_queue(reader) -> None:
    [hit] = rows(reader, "search_samples", text="rash")
    assert hit["sample_id"] == "s-hostile" and "[rash]" in hit["excerpt"]
    assert rows(reader, "search_samples", text="speaker") == []  # keys are not indexed
    assert rows(reader, "search_samples", text="") == []
    assert len(rows(reader, "search_samples", text="chest")) == 5
    found = rows(reader, "review_queue", _search="rash")
    assert [row["sample_id"] for row in found] == ["s-hostile"]


# The review queue --------------------------------------------------------------------------------
def test_queue_filters_and_progress(reader) -> None:
    page = reader.get("/-/medstore/review").text
    assert "0 of 6 reviewed" in page and "6 samples match" in page
    page = reader.get("/-/medstore/review", params={"label": "high"}).text
    assert "0 of 2 reviewed" in page and page.count('class="medstore-sample"') == 2
    gate = reader.get("/-/medstore/review", params={"gate": "expert: the output is not valid JSON"})
    assert "1 samples match" in gate.text and "consult:case-01:v1" in gate.text
    assert "0 samples match" in reader.get("/-/medstore/review?state=rejected").text
    paged = reader.get("/-/medstore/review", params={"size": "4", "page": "2"}).text
    assert "Page 2 of 2" in paged and paged.count('class="medstore-sample"') == 2
    for bad in ({"state": "maybe"}, {"judge_min": "high"}, {"page": "0"}, {"size": "x"}):
        response = reader.get("/-/medstore/review", params=bad)
        assert response.status_code == 400 and "must be" in response.text, bad


def test_queue_item_shows_the_sample_first_and_no_default(reader) -> None:
    page = reader.get("/-/medstore/review/item").text
    assert "Sample 1 of 6 in this queue" in page
    assert page.index('id="sample"') < page.index('id="review"')
    assert 'id="review-login"' in page  # reading needs no login
    second = reader.get("/-/medstore/review/item", params={"after": first_sample(page)}).text
    assert "Sample 2 of 6" in second and 'id="prev"' in second
    last = reader.get("/-/medstore/review/item", params={"after": "s-hostile"}).text
    assert 'id="queue-done"' in last
    assert reader.get("/-/medstore/review/item", params={"sample_id": "s-nope"}).status_code == 404


def first_sample(page: str) -> str:
    return re.search(r'<section id="sample"[^>]*data-sample-id="([^"]+)"', page).group(1)


def test_a_verdict_in_the_queue_goes_on_to_the_next(writer) -> None:
    client, _ = writer
    login(client)
    page = client.get("/-/medstore/review/item", params={"state": "unreviewed"}).text
    assert "checked" not in re.search(r'<form[^>]*id="verdict-form".*?</form>', page, re.S).group(0)
    assert 'name="reviewer"' not in page  # the reviewer is the login
    target = first_sample(page)
    form = dict(re.findall(r'<input type="hidden" name="(csrftoken|next)" value="([^"]+)"', page))
    form["next"] = form["next"].replace("&amp;", "&")
    done = client.post(
        f"/-/medstore/sample/{target}/review", data={**form, "verdict": "reject", "note": "n"}
    )
    assert done.status_code == 302 and done.headers["location"] == form["next"]
    following = client.get(done.headers["location"]).text
    assert first_sample(following) != target
    assert "1 of 6 reviewed" in following and "Sample 1 of 5 in this queue" in following
    [row] = [r for r in rows(client, "review_queue") if r["sample_id"] == target]
    assert row["review_state"] == "rejected"
    facet = client.get("/warehouse/review_queue.json").json()["facet_results"]["review_state"]
    assert {item["value"]: item["count"] for item in facet["results"]} == {
        "unreviewed": 5,
        "rejected": 1,
    }


def test_bulk_verdicts_need_a_login_and_record_every_sample(writer) -> None:
    client, db = writer
    ids = [row["sample_id"] for row in rows(client, "review_queue", label="high")]
    assert len(ids) == 2
    refused = client.post("/-/medstore/review/bulk", data={"sample_id": ids, "verdict": "accept"})
    assert refused.status_code == 403
    token = login(client)
    no_csrf = client.post("/-/medstore/review/bulk", data={"sample_id": ids, "verdict": "accept"})
    assert no_csrf.status_code == 403
    done = client.post(
        "/-/medstore/review/bulk",
        data={"sample_id": ids, "verdict": "accept", "note": "fine", "csrftoken": token,
              "next": "/-/medstore/review?label=high"},
    )  # fmt: skip
    assert done.status_code == 302 and done.headers["location"] == "/-/medstore/review?label=high"
    page = client.get(done.headers["location"]).text
    assert "Recorded accept for 2 samples as dr-kim" in page and "2 of 2 reviewed" in page
    nothing = client.post("/-/medstore/review/bulk", data={"verdict": "reject", "csrftoken": token})
    assert "no samples chosen" in html.unescape(client.get(nothing.headers["location"]).text)
    unknown = client.post(
        "/-/medstore/review/bulk",
        data={"sample_id": [ids[0], "s-nope"], "verdict": "reject", "csrftoken": token},
    )
    assert "no sample with id 's-nope'" in html.unescape(
        client.get(unknown.headers["location"]).text
    )
    with Warehouse(db) as warehouse:
        reviews = warehouse.query("SELECT * FROM review_verdicts ORDER BY id")
        assert [(r["sample_id"], r["verdict"], r["reviewer"]) for r in reviews] == [
            (ids[0], "accept", "dr-kim"),
            (ids[1], "accept", "dr-kim"),
        ]  # the failed bulk verdict recorded nothing, not even its valid half
        assert warehouse.verify().ok


def test_queue_and_task_pages_as_json_are_plain_data(reader) -> None:
    story = reader.get(task_url("consult:case-01:v1") + ".json").json()
    assert json.dumps(story)  # serialisable
    assert story["samples"][0]["in_dataset"] == 1 and story["outcome"]["state"] == "accepted"
