"""results/ from the run dirs: runs.csv, tables/<name>.csv|.md, plots/<name>.png and REPORT.md.

REPORT.md is a list of sections, each rendering Markdown from a ReportContext. This module renders
the report's own: how the report was made, the tables of every sweep, the verdicts on the report's
ambiguities, the check of its conclusions, and skipped run dirs. rnnexp.reproduce lists which
sections REPORT.md has and in what order (a study adds its own there).

A report on unchanged runs is quick: <results>/.cache/ (ignored by git, safe to delete) keeps the
parsed sweep files, what was read from each run dir, and a fingerprint of each plot, so only what
changed is read, composed or drawn again; files whose text did not change are not rewritten.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import shlex
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional, Sequence

import rnnexp
from rnnexp import record
from rnnexp import sweeps as sweeps_pkg
from rnnexp.claims import check_conclusions, claims_markdown
from rnnexp.collect import Collection, RunCache, RunDirWarning, collect, write_runs_csv
from rnnexp.results import Results, atomic_write_text, write_if_changed
from rnnexp.sweeps import Sweep, expected_configs, load_sweeps, sweep_paths
from rnnexp.tables import (TableResult, build_table, fit_markdown, fit_verdict, table_csv,
                           table_markdown)

PACKAGES = ("torch", "numpy", "pandas", "hydra-core", "omegaconf", "optuna", "matplotlib")


class ReportError(ValueError):
    """Bad input to the report (results dir, sweep names); one line."""


@dataclass
class ReportContext:
    results: Path
    sweeps: list[Sweep]
    collection: Collection
    tables: dict[str, TableResult]
    manifest: dict
    quick: bool

    def runs_dir(self) -> Path:
        return Results(self.results).runs


@dataclass(frozen=True)
class Section:
    name: str
    order: int  # REPORT.md lists sections by this
    render: Callable[[ReportContext], str]  # Markdown; "" leaves the section out


# ---------------------------------------------------------------- how it was made

def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores available ({os.cpu_count()} in the machine), {platform.system()} {platform.release()}"


def versions_line() -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def render_made(ctx: ReportContext) -> str:
    m = ctx.manifest
    mode = ("**quick mode**: a tenth of the epochs and fewer seeds; a first look, not comparable "
            "with the published values" if ctx.quick else "full epoch budgets")
    seeds = sorted({int(s) for t in ctx.tables.values() for s in t.values.seed})
    lines = ["## How this report was made", ""]
    if m:
        lines += [f"- Command: `{m.get('command', 'rnnexp-reproduce')}` (launcher: {m.get('launcher', '?')}), "
                  f"started {m.get('started', '?')}, took {m.get('wall_s', 0):.0f} s; "
                  f"{m.get('runs_trained', 0)} runs trained, {m.get('runs_done_before', 0)} found done."]
        if m.get("failures"):
            lines.append("- Failed: " + "; ".join(m["failures"]))
    lines += [
        f"- Report built {datetime.now().astimezone().isoformat(timespec='seconds')} by "
        f"`rnnexp-report --results {ctx.results}`, from the {len(ctx.collection.runs)} runs of "
        f"`{Results(ctx.results).record.name}` (the run dirs under `{ctx.runs_dir()}` folded in; "
        f"{len(ctx.collection.problems)} skipped as unreadable).",
        f"- Mode: {mode}. Seeds found: {', '.join(map(str, seeds)) or 'none'} "
        f"(each cell says how many it averages).",
        f"- Software: {versions_line()}.",
        f"- Machine: {machine_line()}.",
        "- Every cell is the mean ± sample sd over seeds (n = seeds), beside the report's printed "
        "value. Plots: the median over seeds (one seed's spike does not draw the line), bands for the "
        "quartiles and the min–max range, log-scale loss; ◇ marks published values.",
        "- All runs: `runs.csv` (one row per run); tables as CSV and Markdown in `tables/`, plots "
        "in `plots/`.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- tables

def _display_dir(ctx: ReportContext, sweep: Sweep) -> str:
    path = Results(ctx.results).sweep_runs(sweep.name, sweep.quick)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_sweep(ctx: ReportContext, sweep: Sweep) -> str:
    result = ctx.tables[sweep.name]
    lines = [f"### {sweep.title}", "", sweep.note, ""]
    if sweep.quick:
        lines += [f"*Quick mode: {sweep.epochs} epochs" + (
            f", read at epochs {', '.join(sweep.layout.rows.labels)}"
            if sweep.layout.rows.key == "epoch" else "") + "; not comparable with the published "
            "values.*", ""]
    commands = sweep.commands(Path(_display_dir(ctx, sweep)))
    lines += [f"Sweep file `sweeps/tables/{sweep.name}.yaml`; run by hand with"
              + (" (one multirun per group of readings)" if len(commands) > 1 else "") + ":", "",
              "```sh"]
    lines += [shlex.join(["rnnexp-train", *c]) for c in commands]
    lines += ["```", ""]
    ordered = [r.name for r in sweep.readings]
    if result.values.empty:
        lines += ["No runs of this sweep yet: the published values, with the command above to "
                  "make them.", "", table_markdown(result, ordered[0])]
        if sweep.ambiguous:
            lines += [f"**Ambiguity.** {sweep.ambiguity} Every reading will be run.", ""]
        return "\n".join(lines)
    if sweep.ambiguous:
        lines += [f"**Ambiguity.** {sweep.ambiguity} Both (all) readings were run.", "",
                  fit_markdown(result), fit_verdict(result), ""]
        if result.best_reading:
            ordered.sort(key=lambda r: r != result.best_reading)
    for reading in ordered:
        if sweep.ambiguous:
            best = " (best fit)" if reading == result.best_reading else ""
            lines += [f"Reading **{reading}**{best}:", ""]
        lines += [table_markdown(result, reading)]
    lines += [f"![{sweep.title}](plots/{sweep.name}.png)", ""]
    return "\n".join(lines)


def render_tables(ctx: ReportContext) -> str:
    out, section = [], None
    for sweep in ctx.sweeps:
        if sweep.section != section:
            section = sweep.section
            out += [f"## {section}", ""]
        out.append(render_sweep(ctx, sweep))
    return "\n".join(out)


def render_ambiguities(ctx: ReportContext) -> str:
    lines = ["## Where the report contradicts itself: verdicts", ""]
    for sweep in ctx.sweeps:
        if sweep.ambiguous:
            lines.append(f"- **{sweep.title}** — {sweep.ambiguity} {fit_verdict(ctx.tables[sweep.name])}")
    if len(lines) == 2:
        lines.append("- No sweep has alternative readings.")
    return "\n".join(lines) + "\n"


def render_conclusions(ctx: ReportContext) -> str:
    """The section, from the cache when nothing it depends on changed (the checks' bootstrap
    intervals and tests, and scipy's import, take a second or two)."""
    return _cached(Results(ctx.results).cache / CONCLUSIONS_CACHE, _conclusions_key(ctx),
                   lambda: _conclusions_text(ctx), lambda text: isinstance(text, str))


def _conclusions_key(ctx: ReportContext) -> str:
    """What the checks read: the record (every run), each table's settings and cells, the study's
    validation runs, rnnexp's code, and numpy's, pandas' and scipy's versions."""
    h = hashlib.sha256()
    results = Results(ctx.results)
    _digest_files(h, [results.record, results.study / "validation_runs.csv"])
    for name in sorted(ctx.tables):
        h.update(name.encode() + b"\0" + table_csv(ctx.tables[name]).to_csv(index=False).encode())
    h.update(_code_digest().encode())
    _digest_versions(h, ("numpy", "pandas", "scipy"))
    return h.hexdigest()


def _conclusions_text(ctx: ReportContext) -> str:
    checks = check_conclusions(ctx.tables, ctx.collection, Results(ctx.results).study)
    return ("## The report's conclusions, checked across seeds\n\n"
            "Each conclusion is split into comparisons, each paired by seed where the design "
            "allows: its effect, a 95 % bootstrap interval over seeds, n and a test (Wilcoxon "
            "signed-rank on log ratios of losses, a sign-flip permutation test on differences in "
            "epochs). A comparison is *as claimed* or *against* where its interval lies wholly on "
            "one side of no effect, and *too close to call* where it includes no effect. A "
            "conclusion *holds* where every comparison is as claimed, *holds in part* where some "
            "are and none is against, is *mixed* where some are as claimed and some against, "
            "*fails* where none is as claimed and some are against, and is *too close to call* "
            "where every comparison is. docs/statistics.md explains each step.\n\n"
            + claims_markdown(checks))


def render_problems(ctx: ReportContext) -> str:
    if not ctx.collection.problems:
        return ""
    lines = ["## Run dirs left out", "", "These dirs hold an unfinished or damaged run and were "
             "not counted:", ""]
    lines += [f"- `{p.run_dir}`: {p.reason}" for p in ctx.collection.problems]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- building everything

def ensure_writable(path: Path) -> Path:
    """Create `path` if needed and prove a file can be written there; ReportError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ReportError(f"results dir {str(path)!r} is not writable ({e.strerror or e})") from None
    return path


def read_manifest(results: Path) -> dict:
    try:
        data = json.loads(Results(results).manifest.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def report_sweeps(quick: bool, seeds: Optional[int] = None,
                  sweeps_dir: Optional[Path] = None) -> list[Sweep]:
    """The sweeps as the reproduction ran them (quick or not, its --seeds)."""
    kwargs = {"sweeps_dir": sweeps_dir} if sweeps_dir else {}
    sweeps = load_sweeps(**kwargs)
    if quick:
        return [s.quick_version(seeds) for s in sweeps]
    return [s.with_seeds(seeds) for s in sweeps] if seeds else sweeps


def build_report(results: Path, sections: Sequence[Section], quick: Optional[bool] = None,
                 sweeps_dir: Optional[Path] = None, warn: bool = False) -> ReportContext:
    """Collect results/runs, write runs.csv, every table and plot, and REPORT.md of `sections`."""
    results = ensure_writable(results)
    layout = Results(results)
    cache = cache_dir(results)
    manifest = read_manifest(results)
    if quick is None or quick == bool(manifest.get("quick", False)):
        quick, seeds = bool(manifest.get("quick", False)), manifest.get("seeds")
    else:
        seeds = None
    sweeps, configs = cached_sweeps(cache, quick, seeds, sweeps_dir)
    runs_cache = RunCache(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("always" if warn else "ignore", RunDirWarning)
        found = collect(layout.runs, base=results, warn=warn, cache=runs_cache)
    # the run dirs found are folded into the committed record, and everything below reads the
    # record alone: a clone without run dirs writes the same tables, plots and REPORT.md
    entries = record.fold_in(found, record.read_entries(layout.record), record.wanted_epochs(sweeps))
    record.write_entries(layout.record, entries)
    runs_cache.save()  # the histories of every run dir were read into the record
    collection = record.collection_of(entries, results, found.problems)
    tables = {s.name: build_table(s, collection, configs.get(s.name)) for s in sweeps}
    ctx = ReportContext(results, sweeps, collection, tables, manifest, quick)

    write_runs_csv(collection, layout.runs_csv)
    for d in (layout.tables, layout.plots):
        d.mkdir(exist_ok=True)
    for name, result in tables.items():
        write_if_changed(layout.tables / f"{name}.csv", table_csv(result).to_csv(index=False))
        write_if_changed(layout.tables / f"{name}.md", _table_file_markdown(result))
    draw_plots(tables, collection, layout.plots, cache)
    write_if_changed(layout.report, render_report(ctx, sections))
    return ctx


# ---------------------------------------------------------------- what a report keeps for the next

SWEEPS_CACHE = "sweeps.json"
PLOTS_CACHE = "plots.json"
CONCLUSIONS_CACHE = "conclusions.json"
LOADED_SWEEPS_CACHE = "loaded_sweeps.json"
CACHE_VERSION = 1


def cache_dir(results: Path) -> Path:
    """<results>/.cache/, made on first use with a .gitignore of its own (a results dir is often
    committed; its cache is not)."""
    path = Results(results).cache
    try:
        path.mkdir(exist_ok=True)
        ignore = path / ".gitignore"
        if not ignore.exists():
            atomic_write_text(ignore, "# rnnexp-report's cache, safe to delete\n*\n")
    except OSError:
        pass  # no cache: every report reads everything
    return path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    try:
        write_if_changed(path, json.dumps({"version": CACHE_VERSION, **data},
                                               separators=(",", ":")))
    except OSError:
        pass


def _digest_files(h, paths) -> None:
    for path in paths:
        h.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
        h.update(b"\0")


def _digest_versions(h, names) -> None:
    for name in names:
        try:
            h.update(f"{name} {metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            h.update(name.encode())


def _cached(path: Path, key: str, compute: Callable[[], object],
            valid: Callable[[object], bool]):
    """compute()'s value, kept in the cache file `path` under `key`: the kept value while the key
    is the same and it is `valid`, else computed and kept again (only what JSON gives back exactly
    as it was: a NaN somewhere, and it is not kept)."""
    kept = _read_json(path)
    if kept.get("key") == key:
        try:
            value = _decode(kept["value"])
            if valid(value):
                return value
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    value = compute()
    try:
        encoded = _encode(value)
        exact = _decode(encoded) == value
    except (TypeError, ValueError):
        exact = False
    if exact:
        _write_json(path, {"key": key, "value": encoded})
    return value


@functools.cache
def _code_digest() -> str:
    """rnnexp's code and packaged configs, and its Hydra plugins (the config search path is one)."""
    h = hashlib.sha256()
    package = Path(rnnexp.__file__).resolve().parent
    code = sorted(p for p in package.rglob("*")
                  if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts and p.is_file())
    plugins = package.parent / "hydra_plugins"
    code += sorted(p for p in plugins.glob("rnnexp_*/**/*.py") if "__pycache__" not in p.parts)
    _digest_files(h, code)
    return h.hexdigest()


def _sweeps_key(quick: bool, seeds, sweeps_dir: Optional[Path]) -> str:
    """What report_sweeps and expected_configs depend on: the sweep files, rnnexp's code and
    packaged configs (rnnexp-train's config they compose with), Hydra's and OmegaConf's versions,
    quick and seeds."""
    h = hashlib.sha256()
    h.update(json.dumps([quick, seeds]).encode())
    _digest_files(h, sweep_paths(sweeps_dir))
    h.update(_code_digest().encode())
    _digest_versions(h, ("hydra-core", "omegaconf"))
    return h.hexdigest()


def cached_sweeps(cache: Path, quick: bool, seeds, sweeps_dir: Optional[Path] = None
                  ) -> tuple[list[Sweep], dict[str, list[dict]]]:
    """report_sweeps(quick, seeds, sweeps_dir) and every sweep's expected configs (in settings
    order), from the cache when nothing they depend on changed (reading, checking and composing
    the sweep files with Hydra takes seconds)."""
    def compute() -> list:
        sweeps = report_sweeps(quick, seeds, sweeps_dir)
        return [sweeps, {s.name: [c for _, c in expected_configs(s)] for s in sweeps}]

    def valid(value) -> bool:
        sweeps, configs = value
        return all(isinstance(s, Sweep) and len(configs.get(s.name, ())) == len(s.settings())
                   for s in sweeps)

    sweeps, configs = _cached(cache / SWEEPS_CACHE, _sweeps_key(quick, seeds, sweeps_dir),
                              compute, valid)
    return sweeps, configs


def cached_load_sweeps(results: Path) -> list[Sweep]:
    """load_sweeps(): every sweep file read and checked (its settings composed with Hydra), from
    the results dir's cache when neither the files nor rnnexp's code changed. A broken file
    changes the key, so it is read again and refused as load_sweeps refuses it."""
    return _cached(cache_dir(results) / LOADED_SWEEPS_CACHE,
                   _sweeps_key(False, "load_sweeps", None), load_sweeps,
                   lambda sweeps: bool(sweeps) and all(isinstance(s, Sweep) for s in sweeps))


# sweeps as JSON: dataclasses of rnnexp.sweeps (these only), tuples and paths tagged
_CLASSES = {c.__name__: c for c in (sweeps_pkg.Sweep, sweeps_pkg.Layout, sweeps_pkg.Axis,
                                    sweeps_pkg.Published, sweeps_pkg.Reading)}


def _encode(x):
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    if isinstance(x, list):
        return [_encode(v) for v in x]
    if isinstance(x, tuple):
        return {"$tuple": [_encode(v) for v in x]}
    if isinstance(x, dict):
        return {"$dict": [[_encode(k), _encode(v)] for k, v in x.items()]}
    if isinstance(x, Path):
        return {"$path": str(x)}
    if dataclasses.is_dataclass(x) and type(x).__name__ in _CLASSES and \
            _CLASSES[type(x).__name__] is type(x):
        return {"$" + type(x).__name__: {f.name: _encode(getattr(x, f.name))
                                         for f in dataclasses.fields(x)}}
    raise TypeError(f"cannot keep {type(x).__name__}")


def _decode(x):
    if isinstance(x, list):
        return [_decode(v) for v in x]
    if not isinstance(x, dict):
        return x
    (tag, value), = x.items()
    if tag == "$tuple":
        return tuple(_decode(v) for v in value)
    if tag == "$dict":
        return {_decode(k): _decode(v) for k, v in value}
    if tag == "$path":
        return Path(value)
    cls = _CLASSES[tag[1:]] if tag.startswith("$") else None
    if cls is None:
        raise ValueError(f"unknown tag {tag!r}")
    return cls(**{k: _decode(v) for k, v in value.items()})


def draw_plots(tables: dict[str, TableResult], collection: Collection, plots: Path,
               cache: Path) -> list[str]:
    """plots/<name>.png of every table, drawn only where what it shows (or the code drawing it)
    changed or the PNG is not the one drawn last; returns the names drawn."""
    from rnnexp.plots import draw, matplotlib_environment, plot_spec, spec_fingerprint

    environment = matplotlib_environment()  # (plots imports matplotlib only to draw)
    kept = _read_json(cache / PLOTS_CACHE).get("plots", {})
    kept = kept if isinstance(kept, dict) else {}
    now, drawn = {}, []
    for name, result in tables.items():
        png = plots / f"{name}.png"
        spec = plot_spec(result, collection)
        fingerprint = spec_fingerprint(spec, environment)
        before = kept.get(name)
        if isinstance(before, dict) and before.get("fingerprint") == fingerprint and \
                before.get("png") == _file_sha256(png):
            now[name] = before
            continue
        draw(spec, png)
        drawn.append(name)
        now[name] = {"fingerprint": fingerprint, "png": _file_sha256(png)}
    if now != kept:
        _write_json(cache / PLOTS_CACHE, {"plots": now})
    return drawn


def _file_sha256(path: Path) -> Optional[str]:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _table_file_markdown(result: TableResult) -> str:
    sweep = result.sweep
    parts = [f"# {sweep.title}\n", sweep.note + "\n"]
    if sweep.ambiguous:
        parts += [fit_markdown(result), fit_verdict(result) + "\n"]
    for r in sweep.readings:
        if sweep.ambiguous:
            parts.append(f"Reading **{r.name}**{' (best fit)' if r.name == result.best_reading else ''}:\n")
        parts.append(table_markdown(result, r.name))
    return "\n".join(parts)


def render_report(ctx: ReportContext, sections: Sequence[Section]) -> str:
    title = "# Reproduction of \"Visual Recognition Part-2, Assignment 1\" (character-level RNNs)\n"
    body = [s.render(ctx) for s in sorted(sections, key=lambda s: (s.order, s.name))]
    return title + "\n" + "\n".join(b for b in body if b)
