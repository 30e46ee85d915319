"""`serve` (Datasette on the warehouse) and `review` (a reviewer's verdict from the shell)."""

from __future__ import annotations

import getpass
import os

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option
from medstore.hookspecs import hookimpl
from medstore.warehouse.store import default_db_path


@click.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True)
@click.option(
    "--review-token",
    help="Token reviewers log in with to record verdicts [$MEDSTORE_REVIEW_TOKEN; "
    "default: a new random one, printed at start].",
)
@click.option(
    "--refresh-interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between updates of the raw-output search index while serving.",
)
@click.option(
    "--require-login",
    is_flag=True,
    help="Every page needs a reviewer login (required to serve credentialed data beyond "
    "this machine).",
)
@db_option
def serve(
    host: str,
    port: int,
    review_token: str | None,
    refresh_interval: float,
    require_login: bool,
    db_path: str | None,
) -> None:
    """Browse the warehouse in Datasette: facets, canned QA queries, provenance pages, charts,
    and reviewer verdicts.

    Reading needs no login (unless --require-login). Recording a verdict needs the review
    token: reviewers log in at /-/medstore/login, scripts send `Authorization: Bearer TOKEN`.
    Datasette opens the warehouse read-only, so a run can keep writing to it; new events show
    on the next page load. A warehouse holding credentialed data (MIMIC) is served beyond
    loopback only with --require-login.

    \b
    Example:
        python cli.py serve
        python cli.py serve --port 8080 --db runs/consult.db
        MEDSTORE_REVIEW_TOKEN=s3cret python cli.py serve --host 0.0.0.0
        python cli.py serve --host 0.0.0.0 --require-login --db mimic.db
    """
    from medstore.serve.app import make_datasette, new_review_token, run_server
    from medstore.serve.plugin import TOKEN_ENV
    from medstore.warehouse.store import WarehouseError

    path = db_path or default_db_path()
    if not os.path.exists(path):
        raise click.ClickException(f"{path}: no such warehouse (run `python cli.py run` first)")
    token = review_token or os.environ.get(TOKEN_ENV)
    generated = not token
    token = token or new_review_token()
    try:
        if not require_login and not is_loopback_host(host) and holds_credentialed_data(path):
            raise click.ClickException(
                f"{path} holds credentialed data (MIMIC): serving it on {host} would show it to "
                "anyone who can reach this machine; add --require-login, or keep --host 127.0.0.1"
            )
        datasette = make_datasette(path, review_token=token, require_login=require_login)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"serving {path} at http://{host}:{port}/  (Ctrl-C stops)")
    if generated:
        click.echo(f"review token (log in at /-/medstore/login): {token}")
    run_server(datasette, host=host, port=port, refresh_interval_s=refresh_interval)


def is_loopback_host(host: str) -> bool:
    from medstore.pipeline.data_use import is_loopback_address, resolve

    addresses = resolve(host, None)
    return bool(addresses) and all(is_loopback_address(a) for a in addresses)


def holds_credentialed_data(path: str) -> bool:
    """Whether any run sent a credentialed source's records through this warehouse."""
    from medstore.warehouse.store import Warehouse

    with Warehouse(path, readonly=True, require_current=False) as warehouse:
        return bool(warehouse.select_value("holds_credentialed_data"))


@click.command(context_settings=CONTEXT)
@click.argument("sample_id")
@click.option("--reject", "verdict", flag_value="reject", help="Take it out of the dataset.")
@click.option("--accept", "verdict", flag_value="accept", help="Keep it (or bring it back).")
@click.option("--note", default="", help="Why: recorded with the verdict.")
@click.option("--reviewer", help="Your name [default: the login name of this shell's user].")
@db_option
@json_option
def review(
    sample_id: str,
    verdict: str | None,
    note: str,
    reviewer: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Record a reviewer's verdict on a sample; a reject drops it from the dataset views.

    The verdict is an event appended to the log: the latest one per sample counts, so a later
    --accept brings a rejected sample back.

    \b
    Example:
        python cli.py review s-1a2b3c4d5e6f7a8b --reject --note "wrong ICD code for NSTEMI"
        python cli.py review s-1a2b3c4d5e6f7a8b --accept --reviewer "Dr Lee"
    """
    from medstore.warehouse.review import ReviewError, record_review
    from medstore.warehouse.store import WarehouseError

    if verdict is None:
        raise click.ClickException("say --reject or --accept")
    path = db_path or default_db_path()
    if not os.path.exists(path):
        raise click.ClickException(f"{path}: no such warehouse")
    try:
        result = record_review(path, sample_id, verdict, note, reviewer or getpass.getuser())
    except (ReviewError, WarehouseError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"{result['verdict']} recorded for {sample_id} by {result['reviewer']}"
            f" (event {result['event_id']})"
        )


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (serve, review):
        cli.add_command(command)
