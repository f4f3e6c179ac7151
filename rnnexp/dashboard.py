"""rnnexp-dashboard: optuna-dashboard over rnnexp's studies, read where they are.

A target is a results dir (its studies/*.log journal files, rnnexp-train's storage), a journal
file, or an RDB URL (postgresql://..., mysql+pymysql://..., sqlite:///...). Everything is opened
to be read: journal files are not repaired or locked, Optuna's tables are not created in a
database that lacks them. The dashboard writes into a storage only what its user asks for in the
browser (a note, a study made or deleted there).

Several journal files are served by one server that switches between them: `/` lists the files
with their studies and trials, and opening one serves optuna-dashboard on that file. Each file
stays a storage of its own, exactly as Optuna and optuna-dashboard read it (no layer renumbers
studies and trials between them, notes go straight to the file they belong to, and a damaged file
spoils only its own page); the price is one file at a time per server. Running studies show their
new trials and reported losses as they come: each request reads the file's new records.
"""
from __future__ import annotations

import html
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from rnnexp.results import Results
from rnnexp.tuning.storage import JOURNAL_RECORD
INDEX = "/rnnexp"  # the list of journal files, when there are several
OPEN = "/rnnexp/open/"  # + a file's number: serve that file


class DashboardError(ValueError):
    """A target or server that cannot be used (one line)."""


# ---------------------------------------------------------------- what to serve

@dataclass
class Source:
    """One storage the dashboard can show: a journal file or a database."""
    label: str  # the file's name, or the URL without its password
    open: Callable[[], Any]  # -> an Optuna storage
    _storage: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def storage(self) -> Any:
        with self._lock:
            if self._storage is None:
                self._storage = self.open()
            return self._storage


def is_journal(path: Path) -> bool:
    """An Optuna journal file: empty (a study that has not written yet) or starting with a
    journal record."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(JOURNAL_RECORD))
    except OSError:
        return False
    return head == b"" or head == JOURNAL_RECORD


def _journal_source(path: Path) -> Source:
    def open_journal():
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    return Source(path.name, open_journal)


def _shown_url(url: str) -> str:
    """The URL without its password, to print."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is refused when opened
        return url


def _rdb_source(url: str) -> Source:
    """A database, checked now: reachable, and holding Optuna's tables (none are made)."""
    import optuna
    import sqlalchemy
    import sqlalchemy.exc

    shown = _shown_url(url)
    try:
        engine = sqlalchemy.create_engine(url, connect_args=_connect_timeout(url))
        with engine.connect() as conn:
            tables = set(sqlalchemy.inspect(conn).get_table_names())
        engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()
        raise DashboardError(f"cannot reach database {shown}: {reason[0] if reason else err}") \
            from None
    if "studies" not in tables:
        raise DashboardError(f"database {shown} holds no Optuna study (no 'studies' table)")

    def open_rdb():
        return optuna.storages.RDBStorage(url, skip_table_creation=True,
                                          skip_compatibility_check=True)
    return Source(shown, open_rdb)


def _connect_timeout(url: str) -> dict:
    """A few seconds to connect, where the driver takes the option (an unreachable host)."""
    return {"connect_timeout": 5} if url.startswith(("postgresql", "mysql")) else {}


def sources_of(target: str) -> list[Source]:
    """The storages a target names (see the module's docstring); DashboardError otherwise."""
    if "://" in target:
        return [_rdb_source(target)]
    path = Path(target)
    if path.is_file():
        if not is_journal(path):
            raise DashboardError(f"{target!r} is not an Optuna journal file (nor a results dir "
                                 "or a database URL)")
        return [_journal_source(path)]
    if not path.exists():
        raise DashboardError(f"{target!r} does not exist: give a results dir, an Optuna journal "
                             "file or a database URL")
    if not path.is_dir():
        raise DashboardError(f"{target!r} is not a results dir, a journal file or a database URL")
    folder = Results(path).studies if Results(path).studies.is_dir() else path
    files = sorted(p for p in folder.glob("*.log") if p.is_file())
    journals = [p for p in files if is_journal(p)]
    if not journals:
        raise DashboardError(f"no Optuna journal file (*.log) in {str(folder)!r}: run a study "
                             "first (rnnexp-train -m hydra/sweeper=optuna ...)")
    return [_journal_source(p) for p in journals]


# ---------------------------------------------------------------- the web app

class Switcher:
    """A WSGI app: optuna-dashboard on the chosen source, and with several sources a list of
    them at `/` (and INDEX) whose links choose one (OPEN + its number)."""

    def __init__(self, sources: list[Source], make_app: Callable[[Any], Callable]):
        self.sources = sources
        self.make_app = make_app
        self.current = 0
        self._apps: dict[int, Callable] = {}
        self._lock = threading.Lock()

    def app(self, i: int) -> Callable:
        with self._lock:
            if i not in self._apps:
                self._apps[i] = self.make_app(self.sources[i].storage())
            return self._apps[i]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        several = len(self.sources) > 1
        if several and path in ("/", "", INDEX, INDEX + "/"):
            return self._index(start_response)
        if several and path.startswith(OPEN):
            number = path[len(OPEN):].strip("/")
            if not number.isdigit() or int(number) >= len(self.sources):
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"no journal file number {number}\n".encode()]
            self.current = int(number)
            start_response("302 Found", [("Location", "/dashboard")])
            return [b""]
        return self.app(self.current)(environ, start_response)

    def _index(self, start_response: Callable) -> Iterable[bytes]:
        rows = []
        for i, source in enumerate(self.sources):
            try:
                studies = source.storage().get_all_studies()
                what = "; ".join(f"{html.escape(s.study_name)}: {_trials(source, s)}"
                                 for s in studies) or "no study yet"
            except Exception as err:  # noqa: BLE001 - one damaged file spoils only its row
                what = html.escape(f"cannot be read: {err}".splitlines()[0])
            mark = " (shown now)" if i == self.current else ""
            rows.append(f'<li><a href="{OPEN}{i}">{html.escape(source.label)}</a>{mark} '
                        f"— {what}</li>")
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>rnnexp studies</title>"
                "</head><body style='font-family:sans-serif'><h1>rnnexp studies</h1>"
                "<p>One Optuna journal file at a time: open one to see its studies in "
                "optuna-dashboard; come back here (<code>/</code>) to switch.</p><ul>"
                + "".join(rows) + "</ul></body></html>")
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode("utf-8")]


def _trials(source: Source, study) -> str:
    from optuna.trial import TrialState

    trials = source.storage().get_all_trials(study._study_id, deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return f"{len(trials)} trials ({done} finished, {running} running)"


def dashboard_app(storage: Any) -> Callable:
    from optuna_dashboard import wsgi

    return wsgi(storage)


# ---------------------------------------------------------------- the server

class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's open connection does not hold up Ctrl-C
    allow_reuse_address = False  # a port in use is an error, not shared


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's name
        pass  # no line per request: the browser polls


def make_dashboard_server(app: Callable, host: str, port: int) -> WSGIServer:
    try:
        return make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as err:
        if err.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise DashboardError(f"port {port} on {host} is in use: choose another with "
                                 "--port") from None
        if isinstance(err, socket.gaierror):
            raise DashboardError(f"cannot bind to host {host!r}: {err.strerror or err}") from None
        raise DashboardError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None


def require_dashboard() -> None:
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        raise DashboardError("optuna-dashboard is not installed: pip install "
                             "'rnnexp[dashboard]' (or pip install optuna-dashboard)") from None


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


__all__ = ["DashboardError", "Source", "Switcher", "dashboard_app", "is_journal",
           "make_dashboard_server", "require_dashboard", "sources_of", "url_of"]
