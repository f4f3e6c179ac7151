"""rnnexp-dashboard: its targets and one-line errors in process, then a real study watched in
headless Chromium (the DOM after the dashboard's scripts ran, and a screenshot)."""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnexp.dashboard import DashboardError, Switcher, make_dashboard_server, sources_of

BIN = Path(sys.executable).parent
RECORD = '{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n'


# ---------------------------------------------------------------- targets and bad input

def test_a_results_dir_serves_its_journal_files_and_a_file_serves_itself(tmp_path):
    studies = tmp_path / "results" / "studies"
    studies.mkdir(parents=True)
    for name in ("b.log", "a.log"):
        (studies / name).write_text(RECORD)
    (studies / "a.log.lock").write_text("")  # Optuna's lock files are not studies
    assert [s.label for s in sources_of(str(tmp_path / "results"))] == ["a.log", "b.log"]
    assert [s.label for s in sources_of(str(studies / "b.log"))] == ["b.log"]
    assert [s.label for s in sources_of(str(studies))] == ["a.log", "b.log"]  # the folder itself


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nowhere", "does not exist: give a results dir"),
    (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt",
     "is not an Optuna journal file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no Optuna journal file (*.log)"),
])
def test_a_bad_target_is_one_line(tmp_path, make, message):
    with pytest.raises(DashboardError) as err:
        sources_of(str(make(tmp_path)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_database_is_one_line_without_its_password():
    with pytest.raises(DashboardError) as err:
        sources_of("postgresql://rnnexp:secret@127.0.0.1:1/nothing")
    text = str(err.value)
    assert text.startswith("cannot reach database postgresql://rnnexp:***@127.0.0.1:1/nothing: ")
    assert "secret" not in text and "\n" not in text


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DashboardError, match=f"port {port} on 127.0.0.1 is in use: choose "
                                                 "another with --port"):
            make_dashboard_server(lambda env, start: [], "127.0.0.1", port)


def test_several_files_are_listed_and_one_is_chosen(tmp_path):
    for name in ("a.log", "b.log"):
        (tmp_path / name).write_text(RECORD.replace('"s"', f'"{name[0]}-study"'))
    served = []
    switcher = Switcher(sources_of(str(tmp_path)),
                        lambda storage: (lambda env, start: served.append(storage) or [b"app"]))
    calls = []

    def call(path):
        body = b"".join(switcher({"PATH_INFO": path}, lambda status, headers: calls.append(
            (status, dict(headers)))))
        return calls[-1], body.decode()
    (status, _), page = call("/")
    assert status == "200 OK" and "a-study: 0 trials" in page and "b-study: 0 trials" in page
    (status, headers), _ = call("/rnnexp/open/1")
    assert status == "302 Found" and headers["Location"] == "/dashboard"
    _, body = call("/dashboard")
    assert body == "app" and [s.get_all_studies()[0].study_name for s in served] == ["b-study"]
    (status, _), _ = call("/rnnexp/open/7")
    assert status == "404 Not Found"


# ---------------------------------------------------------------- in a browser

def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no headless Chromium: apt-get install chromium (.ci/run installs it)")


def browse(url: str, out: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and loaded the study), in headless Chromium."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1400,1000", "--virtual-time-budget=15000",
            f"--user-data-dir={out / 'chromium-profile'}"]
    if screenshot is not None:
        subprocess.run([*args, f"--screenshot={screenshot}", url], capture_output=True,
                       timeout=120, check=True)
    proc = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True,
                          timeout=120, check=True)
    return proc.stdout


def run_study(cwd: Path, name: str, n_trials: int) -> None:
    proc = subprocess.run(
        [str(BIN / "rnnexp-train"), "-m", "hydra/sweeper=optuna", f"hydra.sweeper.study_name={name}",
         f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.sampler.seed=0",
         "hydra.sweeper.max_failure_rate=1", "hydra.sweeper.report_every=5",
         f"hydra.sweep.dir={cwd}/sweeps/{name}",
         "optimizer.lr=tag(log, interval(0.01, 1))", "train.epochs=20", "train.checkpoint=false"],
        cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def start_dashboard(cwd: Path, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(BIN / "rnnexp-dashboard"), *args, "--port", "0"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"at (http://\S+) ", line)
    assert match, line + proc.stderr.read()
    return proc, match.group(1).rstrip("/")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_study_is_watched_in_a_browser(tmp_path):
    """A study run with rnnexp-train, then rnnexp-dashboard on its results dir: headless Chromium
    shows the study's name, its number of trials, a trial's reported losses and the
    optimization-history plot; more trials
    appear as the study goes on; a second study's file is listed and can be opened; nothing is
    written to the journal files; Ctrl-C stops the server cleanly."""
    run_study(tmp_path, "watched", 6)
    journal = tmp_path / "results" / "studies" / "watched.log"
    before = digest(journal)
    server, url = start_dashboard(tmp_path, "results")
    try:
        trials = browse(f"{url}/dashboard/studies/0/trials", tmp_path)
        assert "watched (id=0)" in trials and re.search(r">\s*6 Trials\s*<", trials), trials[-2000:]
        # the losses trials report every 5 epochs, as the dashboard lists them
        reported = trials[trials.index("Intermediate Values"):][:3000]
        assert [int(e) for e in re.findall(r">(\d+) \d[\d.e-]*<", reported)] == [5, 10, 15, 20]
        shot = tmp_path / "dashboard.png"
        page = browse(f"{url}/dashboard/studies/0", tmp_path, screenshot=shot)
        history = page[page.index('id="plot-history"'):]
        assert "js-plotly-plot" in history[:2000]
        assert len(re.findall(r'class="point"', history)) >= 6  # a marker per trial
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000

        run_study(tmp_path, "watched", 9)  # the study goes on while the dashboard runs
        trials = browse(f"{url}/dashboard/studies/0/trials", tmp_path)
        assert re.search(r">\s*9 Trials\s*<", trials)
        assert digest(journal) != before  # (the study wrote; the dashboard did not:)
        after = digest(journal)
        browse(f"{url}/dashboard/studies/0", tmp_path)
        assert digest(journal) == after
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "stopped" in err

    run_study(tmp_path, "other", 2)
    server, url = start_dashboard(tmp_path, "results")
    try:
        index = browse(f"{url}/", tmp_path)
        assert "other.log" in index and "watched.log" in index and "9 trials" in index
        listed = browse(f"{url}/rnnexp/open/0", tmp_path)  # sorted: other.log first
        assert "other" in listed and "watched" not in listed  # its study list, on the dashboard
        assert "other (id=0)" in browse(f"{url}/dashboard/studies/0", tmp_path)
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)


@pytest.mark.slow
def test_the_command_fails_in_one_line_on_a_bad_target(tmp_path):
    proc = subprocess.run([str(BIN / "rnnexp-dashboard"), str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr


@pytest.mark.slow
def test_a_database_is_served_as_it_is_and_never_given_tables(pg_url):
    """A PostgreSQL database: without Optuna's tables it is refused in one line and stays
    without them; with a study, the dashboard's API lists it."""
    import json
    import threading
    import urllib.request

    import optuna
    import sqlalchemy

    from rnnexp.dashboard import dashboard_app

    with pytest.raises(DashboardError, match="holds no Optuna study"):
        sources_of(pg_url)
    engine = sqlalchemy.create_engine(pg_url)
    with engine.connect() as conn:
        assert sqlalchemy.inspect(conn).get_table_names() == []  # nothing created
    engine.dispose()
    optuna.create_study(study_name="in-db", storage=pg_url).optimize(lambda t: t.suggest_float(
        "x", 0, 1), n_trials=3)
    switcher = Switcher(sources_of(pg_url), dashboard_app)
    server = make_dashboard_server(switcher, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as r:
            studies = json.loads(r.read())["study_summaries"]
        assert [s["study_name"] for s in studies] == ["in-db"]
    finally:
        server.shutdown()
        server.server_close()


from test_scaleout import pg_url  # noqa: E402,F401 - a fresh PostgreSQL database (fixture)
