"""Operations: commands that only read write nothing and refuse what is not a current
warehouse; a new warehouse appears whole or not at all; a full disk says so."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.migrations import MIGRATIONS, ensure_migrations_table
from medstore.warehouse.store import Warehouse, append_records, connect

from .conftest import REPO
from .test_serve_sample_index import event_for

READERS = [["status"], ["report", "--recipe", "consult"], ["verify"], ["provenance", "s-x"]]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def foreign_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO patients VALUES (1, 'A')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_reader_refuses_a_file_that_is_not_a_warehouse(command: list[str], tmp_path: Path):
    db = foreign_file(tmp_path / "clinic.db")
    before = fingerprint(db)
    result = invoke(*command, "--db", str(db))
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {db}: not a medstore warehouse (it has no event log)"
    assert fingerprint(db) == before
    journal = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "delete"  # not switched to WAL
    tables = sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    assert tables == 1


def test_run_refuses_a_foreign_file_too(tmp_path: Path) -> None:
    db = foreign_file(tmp_path / "clinic.db")
    before = fingerprint(db)
    result = invoke("run", "--db", str(db), "--dry-run")
    assert result.exit_code == 1 and "not a medstore warehouse" in result.output
    assert fingerprint(db) == before


def old_warehouse(db: Path) -> None:
    """A warehouse as medstore wrote it before m003."""
    conn = connect(db)
    ensure_migrations_table(conn)
    for migration in MIGRATIONS[:2]:
        migration(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (migration.__name__,))
    import medstore.warehouse.store as store

    project, store.project = store.project, lambda conn, rows: None
    try:
        from medstore.warehouse.events import make_record

        append_records(conn, [make_record(*event_for("accept", "t1", "a"))])
    finally:
        store.project = project
    conn.close()


@pytest.mark.parametrize("command", READERS[:3], ids=lambda c: c[0])
def test_readers_ask_for_migrate_on_an_older_warehouse(command: list[str], tmp_path: Path):
    db = tmp_path / "old.db"
    old_warehouse(db)
    before = fingerprint(db)
    result = invoke(*command, "--db", str(db))
    assert result.exit_code == 1
    assert "written by an older medstore (" in result.output
    assert f"run `python cli.py migrate --db {db}` first" in result.output
    assert fingerprint(db) == before
    migrated = invoke("migrate", "--db", str(db))
    assert migrated.exit_code == 0
    assert migrated.output.startswith(f"{db}: applied m003_sample_index, ")
    assert invoke("migrate", "--db", str(db)).output.strip() == f"{db}: up to date"
    after = invoke(*command, "--db", str(db))
    assert after.exit_code == 0, after.output


def test_readers_write_nothing_to_a_current_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with Warehouse(db) as warehouse:
        warehouse.append([event_for("accept", "t1", "a")])
    before = fingerprint(db)
    for command in (["status", "--json"], ["report", "--recipe", "consult"], ["verify"]):
        assert invoke(*command, "--db", str(db)).exit_code == 0
    assert invoke("provenance", "s-t1-a", "--db", str(db)).exit_code == 0
    assert fingerprint(db) == before


def test_readers_see_the_current_views_without_writing_them(tmp_path: Path) -> None:
    """A view this medstore changed is read from TEMP views, not from the file's old copy."""
    db = tmp_path / "w.db"
    with Warehouse(db) as warehouse:
        warehouse.append([event_for("accept", "t1", "a")])
    conn = sqlite3.connect(db)
    conn.execute("DROP VIEW samples")
    conn.execute("CREATE VIEW samples AS SELECT 'stale' AS sample_id")
    conn.close()
    before = fingerprint(db)
    with Warehouse(db, readonly=True) as reader:
        assert [row["sample_id"] for row in reader.query("SELECT sample_id FROM samples")] == [
            "s-t1-a"
        ]
    assert fingerprint(db) == before


def tiny_filesystem(tmp_path: Path, size_kb: int) -> tuple[list[str], Path]:
    """A shell prefix that runs a command with a small tmpfs mounted at the returned folder,
    in a private mount namespace (root, or an unprivileged user namespace)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed: cannot make a small filesystem")
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", f"mount -t tmpfs -o size={size_kb}k tmpfs {mount_point}"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return prefix, mount_point
    pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")


def test_a_full_disk_at_creation_says_so_and_leaves_no_file(tmp_path: Path) -> None:
    prefix, mount_point = tiny_filesystem(tmp_path, 64)
    create = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from medstore.warehouse.store import Warehouse, WarehouseError\n"
        "try:\n"
        f"    Warehouse({str(mount_point / 'w.db')!r})\n"
        "except WarehouseError as exc:\n"
        "    sys.exit(f'Error: {exc}')\n"
    )
    # A file that fills most of the filesystem first: the schema no longer fits.
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {mount_point} && "
        f"head -c 40000 /dev/zero > {mount_point}/ballast && "
        f'{sys.executable} -c "$0"; echo rc=$?; rm {mount_point}/ballast; ls -a {mount_point}'
    )
    result = subprocess.run([*prefix, "sh", "-c", script, create], capture_output=True, text=True)
    assert "rc=1" in result.stdout, result.stdout + result.stderr
    assert "the disk is full" in result.stderr
    assert "cannot rollback" not in result.stderr
    listing = result.stdout.split("rc=1", 1)[1].split()
    assert sorted(listing) == [".", ".."]


def test_a_full_disk_during_appends_reports_the_real_error(tmp_path: Path) -> None:
    prefix, mount_point = tiny_filesystem(tmp_path, 1024)
    code = (
        "import sys; sys.path.insert(0, {!r}); sys.path.insert(0, {!r})\n"
        "from medstore.warehouse.store import Warehouse, WarehouseError\n"
        "from medstore.warehouse.events import Envelope, TaskStarted\n"
        "w = Warehouse({!r})\n"
        "event = TaskStarted(source_id='x', source_record='y' * 200_000)\n"
        "try:\n"
        "    for i in range(100):\n"
        "        w.append([(TaskStarted(source_id=str(i), source_record=str(i) * 60_000),"
        " Envelope(task_key=str(i)))])\n"
        "except WarehouseError as exc:\n"
        "    print('ERROR', exc)\n"
        "print('verify ok' if w.verify().ok else 'verify FAILED')\n"
    ).format(str(REPO), str(REPO / "tests"), f"{mount_point}/w.db")
    script = f'mount -t tmpfs -o size=1024k tmpfs {mount_point} && {sys.executable} -c "$0"'
    result = subprocess.run([*prefix, "sh", "-c", script, code], capture_output=True, text=True)
    assert "ERROR" in result.stdout, result.stdout + result.stderr
    assert "the disk is full" in result.stdout and "cannot rollback" not in result.stdout
    assert "verify ok" in result.stdout  # what was committed is whole


def test_a_failed_startup_check_creates_no_file_and_no_noise(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "w.db"
    result = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "run", "--base-url", f"http://127.0.0.1:{port}/v1",
         "--model", "m", "--db", str(db), "--no-progress"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot reach http://127.0.0.1:{port}/v1")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Unclosed" not in result.stderr
    assert not db.exists() and list(tmp_path.iterdir()) == []
