"""rnnexp-dashboard: watch rnnexp's Optuna studies in a browser (optuna-dashboard).

    rnnexp-dashboard                       # the studies of ./results (results/studies/*.log)
    rnnexp-dashboard path/to/results       # another results dir, or one journal file
    rnnexp-dashboard postgresql://user@host:5432/db --port 8081
"""
from __future__ import annotations

import sys
from typing import Optional

from rnnexp.cli import OneLineParser, guarded

PROG = "rnnexp-dashboard"


def main(argv: Optional[list[str]] = None) -> None:
    parser = OneLineParser(
        prog=PROG,
        description="Serve optuna-dashboard over rnnexp's studies: a results dir (its "
                    "studies/*.log journal files), one journal file, or a database URL.")
    parser.add_argument("target", nargs="?", default="results",
                        help="RESULTS_DIR, a journal file, or STORAGE_URL (postgresql://..., "
                             "mysql+pymysql://...); default: results")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="default: %(default)s")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: {args.port} is not a port number (0-65535)")

    def prepare():
        from rnnexp.dashboard import (Switcher, dashboard_app, make_dashboard_server,
                                      require_dashboard, sources_of)

        require_dashboard()
        sources = sources_of(args.target)
        switcher = Switcher(sources, dashboard_app)
        switcher.app(0)  # the first storage opens now: a file it cannot read fails here
        return sources, make_dashboard_server(switcher, args.host, args.port)

    sources, server = guarded(PROG, prepare)
    from rnnexp.dashboard import url_of

    port = server.server_address[1]  # --port 0: the port the system chose
    what = (f"{len(sources)} journal files (the list at /)" if len(sources) > 1
            else sources[0].label)
    print(f"{PROG}: serving {what} at {url_of(args.host, port)} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print(f"{PROG}: stopped", file=sys.stderr)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
