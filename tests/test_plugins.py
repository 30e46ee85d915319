"""Plugins: a third-party recipe installed through the `medstore` entry-point group runs end to
end against the fake teacher with its own options; a broken or clashing plugin is one line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO
from .fakeserver import serve

PLUGIN_SOURCE = Path(__file__).parent / "plugin_example" / "tiny_qa.py"


def install_plugin(site: Path, module: str, source: str, dist: str = "tiny-qa") -> None:
    """What `pip install` leaves: the module, and a .dist-info naming it in entry_points.txt."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[medstore]\n{dist} = {module}\n")


def medstore_cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    install_plugin(folder, "tiny_qa", PLUGIN_SOURCE.read_text())
    return folder


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.json"
    items = [{"id": f"q{i}", "question": f"Is {i} mg of aspirin a lot?"} for i in range(4)]
    path.write_text(json.dumps(items))
    return path


def confidence_teacher(request: dict) -> str:
    question = request["messages"][-1]["content"]
    # q0 and q1 answer confidently, q2 and q3 do not: the plugin's own validator decides.
    confident = "0 mg" in question or "1 mg" in question
    return json.dumps(
        {"answer": "It depends on the indication.", "confidence": 0.9 if confident else 0.2}
    )


def test_plugin_recipe_runs_end_to_end(site: Path, questions: Path, tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with serve() as teacher:
        teacher.set_responder(confidence_teacher)
        common = ["--recipe", "tiny-qa", "--source", str(questions), "--db", str(db),
                  "--base-url", teacher.openai_base_url, "--model", "m", "--no-progress",
                  "--retry-base-delay", "0"]  # fmt: skip
        result = medstore_cli(site, "run", *common)
        assert result.returncode == 0, result.stderr
        assert "2 accepted, 2 rejected" in result.stdout
        # Its own option, from its own pydantic model, lowers the bar for a fresh warehouse.
        result = medstore_cli(site, "run", *common[:5], str(tmp_path / "w2.db"), *common[6:],
                              "--min-confidence", "0.1")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "4 accepted, 0 rejected" in result.stdout
    with sqlite3.connect(db) as conn:
        reasons = conn.execute(
            "SELECT reason FROM task_state WHERE recipe = 'tiny-qa' AND state = 'rejected'"
        ).fetchall()
        assert reasons == [("answer: invalid after 2 repairs",)] * 2
        template = conn.execute(
            "SELECT DISTINCT json_extract(payload_json, '$.prompt_template') FROM events"
            " WHERE event_type = 'llm_request' AND attempt = 0"
        ).fetchall()
        assert template == [("tiny-qa/answer",)]
    listed = medstore_cli(site, "plugins", "--json")
    plugins = json.loads(listed.stdout)
    assert plugins == [
        {
            "name": "tiny-qa",
            "builtin": False,
            "version": "0.1",
            "package": "tiny-qa",
            "hooks": ["register_recipes"],
            "recipes": ["tiny-qa"],
            "backends": [],
        }
    ]
    text = medstore_cli(site, "plugins").stdout
    assert "tiny-qa  (tiny-qa 0.1)  hooks: register_recipes" in text
    help_text = medstore_cli(site, "run", "--recipe", "tiny-qa", "--help").stdout
    assert "Options of recipe tiny-qa:" in help_text and "--min-confidence" in help_text
    assert "Options of recipe consult" not in help_text and "--subject-id" not in help_text


def test_plugin_option_on_another_recipe_is_refused(site: Path, tmp_path: Path) -> None:
    result = medstore_cli(site, "run", "--recipe", "consult", "--min-confidence", "0.3",
                          "--db", str(tmp_path / "w.db"))  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: --min-confidence is an option of tiny-qa, not consult"
    assert not (tmp_path / "w.db").exists()


def test_builtin_plugins_are_listed_with_what_they_register(site: Path) -> None:
    plugins = json.loads(medstore_cli(site, "plugins", "--all", "--json").stdout)
    by_name = {plugin["name"]: plugin for plugin in plugins}
    assert by_name["medstore.recipes.builtin"]["recipes"] == [
        "consult", "hierarchical", "medec-cot", "medec-safe", "mimic-dialogue"
    ]  # fmt: skip
    assert by_name["medstore.llm.builtin"]["backends"] == ["local", "ollama", "openai"]
    assert "register_commands" in by_name["medstore.cli.run"]["hooks"]


def test_a_plugin_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "broken_plugin", "import no_such_module_here\n", dist="broken")
    result = medstore_cli(site, "status", "--db", str(tmp_path / "w.db"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "Error: plugin broken (package broken) failed to load: ModuleNotFoundError("
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_recipe_name_taken_twice_is_one_line(site: Path, tmp_path: Path) -> None:
    shutil.copytree(site, tmp_path / "site2")
    clash = PLUGIN_SOURCE.read_text().replace('name = "tiny-qa"', 'name = "consult"')
    install_plugin(tmp_path / "site2", "clash_plugin", clash, dist="clash")
    result = medstore_cli(tmp_path / "site2", "run", "--recipe", "consult", "--dry-run",
                          "--db", str(tmp_path / "w.db"))  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: plugin clash: recipe 'consult' is already registered by medstore.recipes.builtin"
    )
