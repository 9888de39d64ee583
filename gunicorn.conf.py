"""gunicorn settings; each may be overridden with the usual GUNICORN_CMD_ARGS."""

import gc
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger

# Prometheus multiprocess mode: workers write samples to files in this directory,
# which must exist (and be empty) before any worker imports prometheus-client.
_metrics_dir = (os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                or tempfile.mkdtemp(prefix="tessera-metrics-"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def _tessera_package():  # type: ignore[no-untyped-def]
    """The service's package: `app` beside this file in a checkout, `tessera` installed."""
    names = ("app", "tessera") if (Path(__file__).parent / "app").is_dir() else ("tessera",)
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("neither the checkout's `app` nor an installed `tessera` can be imported")


# Imported only now: importing the package imports prometheus-client, which picks
# its multiprocess mode from the variable set just above.
_package = _tessera_package()
logging_config = importlib.import_module(_package.__name__ + ".logs").logging_config
FreezeSchedule = importlib.import_module(_package.__name__ + ".gc_schedule").FreezeSchedule
sqlite_checkpoints = importlib.import_module(_package.__name__ + ".sqlite_checkpoints")

bind = os.environ.get("TESSERA_BIND", "127.0.0.1:8000")
# Embedded default: one worker with threads (SQLite, in-memory limits). Production
# (DATABASE_URL + REDIS_URL) sets TESSERA_WORKERS, or the platform's WEB_CONCURRENCY.
workers = int(os.environ.get("TESSERA_WORKERS") or os.environ.get("WEB_CONCURRENCY") or "1")
threads = int(os.environ.get("TESSERA_THREADS", "4"))
worker_class = "gthread"
accesslog = os.environ.get("TESSERA_ACCESS_LOG", "-") or None  # "" turns it off


class TesseraLogger(Logger):
    """gunicorn's logger, with an access log that is off when ``accesslog`` is unset.

    gunicorn writes an access line whenever a logging configuration is given (ours
    below), whatever ``accesslog`` says, after building its atoms: about 30 µs per
    request for a line nobody asked for.
    """

    def access(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        if self.cfg.accesslog is not None:
            super().access(resp, req, environ, request_time)


logger_class = TesseraLogger
timeout = 30
# The app's logging configuration, for gunicorn's own lines too (app/logs.py).
try:
    logconfig_dict = logging_config(os.environ.get("TESSERA_LOG_LEVEL", "INFO"),
                                    os.environ.get("TESSERA_LOG_FORMAT", "json"))
except ValueError:  # on_starting's check names the bad setting
    logconfig_dict = logging_config()


def _freeze_every() -> int:
    """TESSERA_GC_FREEZE_EVERY: requests between two freezes (app/gc_schedule.py)."""
    raw = os.environ.get("TESSERA_GC_FREEZE_EVERY", "1000")
    if not raw.isdigit():
        raise ValueError(f"TESSERA_GC_FREEZE_EVERY: expected a whole number >= 0, got {raw!r}")
    return int(raw)


try:
    _gc_schedule = FreezeSchedule(every=_freeze_every())
except ValueError:  # on_starting's check names the bad setting
    _gc_schedule = FreezeSchedule(every=0)


def on_starting(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    # Refuse a bad configuration here, once, with one line naming the setting
    # (in a worker it would be a traceback per boot attempt).
    try:
        _package.check_settings()
        _freeze_every()
    except (_package.ConfigError, ValueError) as exc:
        print(f"tessera: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    # On SQLite, WAL checkpoints on a thread of their own rather than inside the
    # commit that crosses the threshold (app/sqlite_checkpoints.py).
    sqlite_checkpoints.start_for(worker.wsgi)
    # The app is loaded: its ~136,000 long-lived objects (modules, SQLAlchemy's and
    # Flask's tables) go to the permanent generation, out of every later full
    # collection's walk. A full collection is a pause of the request in flight;
    # under first-seen tokens (9 tracked objects per cached token) bench/gc_pause.py
    # saw the longest one go from 1,082 ms to 453 ms on a busy host (issue 21).
    gc.collect()
    gc.freeze()


def post_request(worker, req, environ, resp):  # type: ignore[no-untyped-def]
    # Later survivors (the verified-token cache's entries) go the same way, in
    # batches, with a full reclaim now and then (app/gc_schedule.py).
    _gc_schedule.request_done()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
