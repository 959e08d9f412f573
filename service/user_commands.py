"""The user's commands of `trainyard` (beside `run`, `api` and `worker`): datasets, specs,
jobs, studies, models and the project's keys (`keys list`, `keys revoke`), over the HTTP API
through the SDK; and the admin's `projects` and `keys create --project`, with the service's
admin key from `TRAINYARD_ADMIN_KEY`.

`trainyard login --url URL --key KEY` saves where and who (a file readable by its owner only,
`~/.config/trainyard/config.json` or `$TRAINYARD_CONFIG`); `TRAINYARD_URL` and
`TRAINYARD_API_KEY` override it. Every command takes `--json` and then prints the API's answer
as JSON on stdout, for scripts.

Exit codes: 0 done; 1 the API refused the request (its error code and message on stderr);
3 a watched job or study ended without succeeding; 4 the service could not be reached or the
credentials are missing; 2 is typer's own for a bad command line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from client import ApiError, Client, Resource

API_ERROR, NOT_SUCCEEDED, UNREACHABLE = 1, 3, 4
DEFAULT_URL = "http://127.0.0.1:8000"
# A study's watch polls; a job's follows its event stream.
WATCH_POLL_SECONDS = 0.5

out = Console()
err = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]


# ---- where and who ------------------------------------------------------------------------


def config_path() -> Path:
    configured = os.environ.get("TRAINYARD_CONFIG")
    return Path(configured) if configured else Path.home() / ".config" / "trainyard" / "config.json"


def credentials() -> tuple[str, str]:
    saved: dict[str, str] = {}
    if config_path().exists():
        saved = json.loads(config_path().read_text())
    url = os.environ.get("TRAINYARD_URL") or saved.get("url") or DEFAULT_URL
    key = os.environ.get("TRAINYARD_API_KEY") or saved.get("key")
    if not key:
        err.print("[red]No API key: run `trainyard login --key ...` or set TRAINYARD_API_KEY[/red]")
        raise typer.Exit(UNREACHABLE)
    return url, key


@contextmanager
def api_client() -> Iterator[Client]:
    """The SDK client, with API errors and connection failures turned into exit codes."""
    url, key = credentials()
    with calling(url, key) as client:
        yield client


@contextmanager
def admin_client(url: str) -> Iterator[Client]:
    """The SDK client with the service's admin key (TRAINYARD_ADMIN_KEY), for the admin's
    commands; no saved login applies to them."""
    key = os.environ.get("TRAINYARD_ADMIN_KEY")
    if not key:
        err.print("[red]No admin key: set TRAINYARD_ADMIN_KEY to the service's admin key[/red]")
        raise typer.Exit(UNREACHABLE)
    with calling(url, key) as client:
        yield client


@contextmanager
def calling(url: str, key: str) -> Iterator[Client]:
    try:
        with Client(url, key) as client:
            yield client
    except ApiError as exc:
        err.print(f"[red]error {exc.status} {exc.code}:[/red] {exc.message}")
        if exc.details:
            err.print(json.dumps(exc.details, indent=2))
        raise typer.Exit(API_ERROR) from None
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach the service at {url}:[/red] {exc}")
        raise typer.Exit(UNREACHABLE) from None


def emit(answer: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        print(json.dumps(as_sent(answer), indent=2, default=str))
    else:
        render(answer)


def as_sent(answer: Any) -> Any:
    """The SDK's models (and lists of them) back into the JSON the API sent."""
    if isinstance(answer, Resource):
        return answer.to_json()
    if isinstance(answer, list):
        return [as_sent(item) for item in answer]
    return answer


def table_of(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else fmt(cell) for cell in row))
    return table


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        err.print(f"[red]{what}: cannot read {path} as JSON: {exc}[/red]")
        raise typer.Exit(API_ERROR) from None


def metrics_line(metrics: dict[str, float] | None) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in (metrics or {}).items() if "/" not in k)


# ---- login --------------------------------------------------------------------------------


def login(
    key: Annotated[str, typer.Option(help="A project's API key (ty_...).")],
    url: Annotated[str, typer.Option(help="The service's base URL.")] = DEFAULT_URL,
) -> None:
    """Check the key against the service and save both for the next commands."""
    try:
        with Client(url, key) as client:
            client.list_datasets(limit=1)
    except ApiError as exc:
        err.print(f"[red]the service refused the key: {exc}[/red]")
        raise typer.Exit(API_ERROR) from None
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach the service at {url}: {exc}[/red]")
        raise typer.Exit(UNREACHABLE) from None
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"url": url, "key": key}) + "\n")
    err.print(f"Signed in to {url}; saved in {path}")


# ---- datasets -----------------------------------------------------------------------------

datasets = typer.Typer(help="Upload and inspect datasets.", no_args_is_help=True)


@datasets.command("upload")
def datasets_upload(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="Default: the file's name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a CSV, Parquet, JSON Lines or NPZ file."""
    with api_client() as client:
        dataset = client.upload_dataset(path, name=name)
    emit(dataset, as_json, lambda d: out.print(f"{d['id']}  {d['name']}: {d['rows']} rows"))


@datasets.command("list")
def datasets_list(as_json: JsonOption = False) -> None:
    with api_client() as client:
        page = client.list_datasets(limit=200)
    emit(
        page,
        as_json,
        lambda p: out.print(
            table_of(
                "Datasets",
                ["id", "name", "kind", "rows", "columns", "created"],
                [
                    [d["id"], d["name"], d["kind"], d["rows"], len(d["columns"]), d["created_at"]]
                    for d in p["items"]
                ],
            )
        ),
    )


@datasets.command("profile")
def datasets_profile(
    dataset_id: str,
    target: Annotated[str | None, typer.Option(help="Class balance and feature scores.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per-column statistics and warnings."""
    with api_client() as client:
        profile = client.dataset_profile(dataset_id, target)

    def render(p: dict) -> None:
        rows = []
        for column in p["columns"]:
            numeric = column.get("numeric") or {}
            rows.append(
                [
                    column["name"],
                    column["type"],
                    column["missing"],
                    column["unique"],
                    numeric.get("mean"),
                    numeric.get("std"),
                ]
            )
        out.print(
            table_of(
                f"{p['rows']} rows", ["column", "type", "missing", "unique", "mean", "std"], rows
            )
        )
        for warning in p["warnings"]:
            out.print(f"[yellow]warning[/yellow] {warning['code']}: {warning['message']}")

    emit(profile, as_json, render)


# ---- specs --------------------------------------------------------------------------------

specs = typer.Typer(help="Check specs before training.", no_args_is_help=True)


@specs.command("validate")
def specs_validate(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The spec, JSON.")],
    dataset: Annotated[str, typer.Option(help="The dataset it would train on.")],
    as_json: JsonOption = False,
) -> None:
    """Dry-run a spec on a dataset: the layer table and parameter count, or what is wrong."""
    document = read_json(spec, "spec")
    with api_client() as client:
        answer = client.validate_spec(dataset, document)

    def render(a: dict) -> None:
        layers = a.get("layers") or []
        if layers:
            columns = list(layers[0])
            rows = [[row.get(c) for c in columns] for row in layers]
            out.print(table_of("Layers", columns, rows))
        out.print(f"valid: {a.get('parameters', '?')} parameters")

    emit(answer, as_json, render)


# ---- jobs ---------------------------------------------------------------------------------

jobs = typer.Typer(help="Submit, watch and manage training jobs.", no_args_is_help=True)


def watch_job(client: Client, job_id: str) -> dict:
    """A progress bar per epoch with the loss and ETA, health warnings as they happen (the
    job's live event stream); the ended job."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[epoch]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task(job_id, total=None, epoch="", metrics="queued")
        for event in client.stream_job(job_id):
            data = event.data if isinstance(event.data, dict) else {}
            if event.type == "progress" and "epoch" in data:
                progress.update(
                    bar,
                    total=data.get("epochs"),
                    completed=data["epoch"],
                    epoch=f"epoch {data['epoch']}/{data.get('epochs')}",
                    metrics=metrics_line(data.get("metrics")),
                )
            elif event.type == "warning":
                progress.console.print(
                    f"[yellow]warning[/yellow] epoch {data.get('epoch')} "
                    f"{data.get('code')}: {data.get('message')}"
                )
            elif event.type == "log":
                progress.console.print(f"[dim]{data.get('message')}[/dim]")
    return client.get_job(job_id)


def job_ended(job: dict, as_json: bool) -> None:
    emit(job, as_json, show_job)
    if job["status"] != "succeeded":
        raise typer.Exit(NOT_SUCCEEDED)


def show_job(job: dict) -> None:
    out.print(f"{job['id']}  [bold]{job['status']}[/bold]  attempts {job['attempts']}")
    if job["progress"]:
        p = job["progress"]
        out.print(f"epoch {p['epoch']}/{p['epochs']}  {metrics_line(job['metrics'])}")
    if job["error"]:
        out.print(f"[red]{job['error']['code']}: {job['error']['message']}[/red]")
    for warning in job["warnings"]:
        out.print(f"[yellow]warning[/yellow] epoch {warning['epoch']} {warning['message']}")
    if job["model_id"]:
        out.print(f"model {job['model_id']}")
    report = job.get("report") or {}
    if report.get("evaluation"):
        evaluation = report["evaluation"]
        out.print(f"test ({evaluation['rows']} rows): {metrics_line(evaluation['metrics'])}")
    if report.get("compute"):
        out.print(f"trained on {compute_line(report['compute'])}")


def compute_line(compute: dict) -> str:
    """`cuda (NVIDIA H100), bf16, 2 ranks`: what device and precision "auto" chose."""
    where = f"cuda ({compute['device_name']})" if compute["device"] == "cuda" else "cpu"
    ranks = f", {compute['ranks']} ranks" if compute["ranks"] > 1 else ""
    return f"{where}, {compute['precision']}{ranks}"


@jobs.command("submit")
def jobs_submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The spec, JSON.")],
    dataset: Annotated[str, typer.Option(help="The dataset to train on.")],
    watch: Annotated[bool, typer.Option(help="Follow it to its end.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Queue a training job; with --watch, follow it and exit 3 unless it succeeds."""
    document = read_json(spec, "spec")
    with api_client() as client:
        job = client.create_job(dataset, document)
        if not watch:
            emit(job, as_json, lambda j: out.print(f"{j['id']}  {j['status']}"))
            return
        if not as_json:
            err.print(f"submitted {job['id']}")
        ended = watch_job(client, job["id"])
    job_ended(ended, as_json)


@jobs.command("watch")
def jobs_watch(job_id: str, as_json: JsonOption = False) -> None:
    """Follow a job to its end; exit 3 unless it succeeds."""
    with api_client() as client:
        ended = watch_job(client, job_id)
    job_ended(ended, as_json)


@jobs.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    as_json: JsonOption = False,
) -> None:
    with api_client() as client:
        page = client.list_jobs(status=status, limit=200)
    rows = [
        [
            j["id"],
            j["status"],
            f"{j['progress']['epoch']}/{j['progress']['epochs']}" if j["progress"] else "",
            metrics_line(j["metrics"]),
            j["created_at"],
        ]
        for j in page["items"]
    ]
    emit(
        page,
        as_json,
        lambda _: out.print(table_of("Jobs", ["id", "status", "epoch", "metrics", "at"], rows)),
    )


@jobs.command("show")
def jobs_show(job_id: str, as_json: JsonOption = False) -> None:
    with api_client() as client:
        job = client.get_job(job_id)
    emit(job, as_json, show_job)


@jobs.command("cancel")
def jobs_cancel(job_id: str, as_json: JsonOption = False) -> None:
    """Stop a job at its next step (a queued one at once)."""
    with api_client() as client:
        job = client.cancel_job(job_id)
    emit(job, as_json, lambda j: out.print(f"{j['id']}  {j['status']} (cancel requested)"))


@jobs.command("logs")
def jobs_logs(job_id: str, as_json: JsonOption = False) -> None:
    """The job's per-epoch metrics and health warnings."""
    with api_client() as client:
        history = client.job_metrics(job_id)

    def render(h: dict) -> None:
        names = sorted({n for e in h["epochs"] for n in e["values"] if "/" not in n})
        rows = [[e["epoch"], *(e["values"].get(n) for n in names)] for e in h["epochs"]]
        out.print(table_of(f"Job {h['job_id']}", ["epoch", *names], rows))
        for warning in h["warnings"]:
            out.print(f"[yellow]warning[/yellow] epoch {warning['epoch']} {warning['message']}")

    emit(history, as_json, render)


# ---- studies ------------------------------------------------------------------------------

studies = typer.Typer(help="Hyperparameter searches.", no_args_is_help=True)


def show_study(study: dict) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in study["counts"].items() if n)
    objective = study["objective"]
    out.print(
        f"{study['id']}  {study['name']}  [bold]{study['status']}[/bold]  "
        f"{objective['direction']} {objective['metric']}  {counts}"
    )
    if study["best"]:
        best = study["best"]
        out.print(f"best: trial {best['number']} {best['value']:.4g} {best['params']}")
        out.print(f"model: {best['model']}")
    params = sorted({p for t in study["trials"] for p in t["params"]})
    rows = [
        [t["number"], t["state"], *(t["params"].get(p) for p in params), t["value"]]
        + [t["epochs_run"]]
        for t in study["trials"]
    ]
    out.print(table_of("Trials", ["#", "state", *params, objective["metric"], "epochs"], rows))
    if study["error"]:
        out.print(f"[red]{study['error']}[/red]")


def watch_study(client: Client, study_id: str) -> dict:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[trials]} trials  {task.fields[best]}"),
        console=err,
    ) as progress:
        bar = progress.add_task(study_id, total=None, trials="", best="")
        while True:
            study = client.get_study(study_id)
            ended = sum(
                n for state, n in study["counts"].items() if state not in ("queued", "running")
            )
            best = f"best {study['best']['value']:.4g}" if study["best"] else ""
            trials = f"{ended}/{study['max_trials']}"
            total = study["max_trials"]
            progress.update(bar, total=total, completed=ended, trials=trials, best=best)
            if study["status"] != "running":
                return study
            time.sleep(WATCH_POLL_SECONDS)


@studies.command("create")
def studies_create(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Base spec, JSON.")],
    space: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Search space, JSON.")],
    dataset: Annotated[str, typer.Option(help="The dataset every trial trains on.")],
    name: Annotated[str | None, typer.Option()] = None,
    max_trials: Annotated[int, typer.Option()] = 20,
    parallel_trials: Annotated[int, typer.Option()] = 2,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median, successive_halving, hyperband, none")] = (
        "median"
    ),
    metric: Annotated[str | None, typer.Option(help="Default: the task's.")] = None,
    watch: Annotated[bool, typer.Option(help="Follow it to its end.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a study; with --watch, follow it and exit 3 unless it succeeds."""
    options: dict[str, Any] = {
        "max_trials": max_trials,
        "parallel_trials": parallel_trials,
        "sampler": sampler,
        "pruner": pruner,
    }
    if name:
        options["name"] = name
    if metric:
        options["objective"] = {"metric": metric}
    base, search_space = read_json(spec, "spec"), read_json(space, "search space")
    with api_client() as client:
        study = client.create_study(dataset, base, search_space, **options)
        if not watch:
            emit(study, as_json, lambda s: out.print(f"{s['id']}  {s['name']}  {s['status']}"))
            return
        ended = watch_study(client, study["id"])
    emit(ended, as_json, show_study)
    if ended["status"] != "succeeded":
        raise typer.Exit(NOT_SUCCEEDED)


@studies.command("list")
def studies_list(as_json: JsonOption = False) -> None:
    with api_client() as client:
        page = client.list_studies(limit=200)
    rows = [
        [s["id"], s["name"], s["status"], len(s["trials"]), (s["best"] or {}).get("value")]
        for s in page["items"]
    ]
    emit(
        page,
        as_json,
        lambda _: out.print(table_of("Studies", ["id", "name", "status", "trials", "best"], rows)),
    )


@studies.command("show")
def studies_show(study_id: str, as_json: JsonOption = False) -> None:
    with api_client() as client:
        study = client.get_study(study_id)
    emit(study, as_json, show_study)


@studies.command("cancel")
def studies_cancel(study_id: str, as_json: JsonOption = False) -> None:
    with api_client() as client:
        study = client.cancel_study(study_id)
    emit(study, as_json, lambda s: out.print(f"{s['id']}  {s['status']}"))


# ---- models -------------------------------------------------------------------------------

models = typer.Typer(help="The registry: list, predict, export, aliases.", no_args_is_help=True)


@models.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="A name: list its versions.")] = None,
    as_json: JsonOption = False,
) -> None:
    with api_client() as client:
        if name is None:
            page = client.list_models(limit=200)
            rows = [
                [m["name"], m["latest_version"], m["versions"], m["aliases"]] for m in page["items"]
            ]
            columns = ["name", "latest", "versions", "aliases"]
        else:
            page = client.model_versions(name, limit=200)
            rows = [
                [v["version"], ", ".join(v["aliases"]), v["id"], metrics_line(v["test_metrics"])]
                for v in page["items"]
            ]
            columns = ["version", "aliases", "id", "test metrics"]
    emit(page, as_json, lambda _: out.print(table_of(name or "Models", columns, rows)))


@models.command("predict")
def models_predict(
    model: Annotated[str, typer.Argument(help="mdl_..., name/versions/N or name@alias")],
    rows: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="A JSON list of instances.")
    ],
    as_json: JsonOption = False,
) -> None:
    instances = read_json(rows, "rows")
    with api_client() as client:
        predictions = client.predict(model, instances)
    emit(predictions, as_json, lambda p: [out.print(json.dumps(as_sent(row))) for row in p])


@models.command("export")
def models_export(
    model: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the file.")],
    format: Annotated[str, typer.Option(help="onnx, torchscript or safetensors")] = "onnx",
) -> None:
    with api_client() as client:
        content = client.export_model(model, format)
    output.write_bytes(content)
    err.print(f"wrote {output} ({len(content)} bytes)")


@models.command("alias")
def models_alias(
    name: str,
    alias: str,
    version: Annotated[int | None, typer.Argument(help="Omit with --delete.")] = None,
    delete: Annotated[bool, typer.Option(help="Remove the alias.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Point name@alias at a version (or remove it with --delete)."""
    if delete == (version is not None):
        err.print("[red]give a version, or --delete[/red]")
        raise typer.Exit(2)
    with api_client() as client:
        if delete:
            client.delete_alias(name, alias)
            err.print(f"removed {name}@{alias}")
            return
        answer = client.set_alias(name, alias, version)  # type: ignore[arg-type]
    emit(answer, as_json, lambda _: out.print(f"{name}@{alias} -> version {version}"))


# ---- the admin's: projects and their first keys -------------------------------------------

projects = typer.Typer(help="Create projects (needs TRAINYARD_ADMIN_KEY).", no_args_is_help=True)
keys = typer.Typer(
    help="API keys: list and revoke your project's; create one for any project "
    "(create needs TRAINYARD_ADMIN_KEY).",
    no_args_is_help=True,
)
UrlOption = Annotated[
    str, typer.Option("--url", envvar="TRAINYARD_URL", help="The service's address.")
]


@projects.command("create")
def projects_create(name: str, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """A new project and its first API key (the secret is shown this once)."""
    with admin_client(url) as client:
        project = client.create_project(name)
    emit(
        project,
        as_json,
        lambda p: out.print(
            f"{p['id']}  {p['name']}\nAPI key (shown once): [bold]{p['key']['secret']}[/bold]"
        ),
    )


@projects.command("list")
def projects_list(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    with admin_client(url) as client:
        page = client.list_projects(limit=200)
    emit(
        page,
        as_json,
        lambda p: out.print(
            table_of(
                "Projects",
                ["id", "name", "created"],
                [[r["id"], r["name"], r["created_at"]] for r in p["items"]],
            )
        ),
    )


@keys.command("create")
def keys_create(
    project: Annotated[str, typer.Option("--project", help="The project's id (prj_...).")],
    name: Annotated[str | None, typer.Option(help="A label to tell keys apart.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """A new API key for a project (the secret is shown this once)."""
    with admin_client(url) as client:
        key = client.create_project_key(project, name)
    emit(
        key,
        as_json,
        lambda k: out.print(
            f"{k['id']}  {k['name']}\nAPI key (shown once): [bold]{k['secret']}[/bold]"
        ),
    )


@keys.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """The keys of the signed-in project: never their secrets, only their first characters."""
    with api_client() as client:
        listed = client.list_keys()
    emit(
        listed,
        as_json,
        lambda k: out.print(
            table_of(
                "API keys",
                ["id", "name", "prefix", "created", "revoked"],
                [[r.id, r.name, r.prefix, r.created_at, r.revoked_at] for r in k.items],
            )
        ),
    )


@keys.command("revoke")
def keys_revoke(key_id: str, as_json: JsonOption = False) -> None:
    """Revoke one of the signed-in project's keys: it is refused from the next request on.
    Revoking a revoked key is no error; the project's last active key cannot be revoked
    (exit 1)."""
    with api_client() as client:
        key = client.revoke_key(key_id)
    emit(key, as_json, lambda k: out.print(f"{k.id}  {k.name}: revoked at {k.revoked_at}"))


def register(cli: typer.Typer) -> None:
    """Add the user's commands to `trainyard`."""
    cli.command()(login)
    cli.add_typer(datasets, name="datasets")
    cli.add_typer(specs, name="specs")
    cli.add_typer(jobs, name="jobs")
    cli.add_typer(studies, name="studies")
    cli.add_typer(models, name="models")
    cli.add_typer(projects, name="projects")
    cli.add_typer(keys, name="keys")
