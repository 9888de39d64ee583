"""gunicorn settings; each may be overridden with the usual GUNICORN_CMD_ARGS."""

import os
import shutil
import tempfile

bind = os.environ.get("TESSERA_BIND", "127.0.0.1:8000")
# Embedded default: one worker with threads (SQLite, in-memory limits). Production
# (DATABASE_URL + REDIS_URL) sets TESSERA_WORKERS to use several.
workers = int(os.environ.get("TESSERA_WORKERS", "1"))
threads = int(os.environ.get("TESSERA_THREADS", "4"))
worker_class = "gthread"
accesslog = os.environ.get("TESSERA_ACCESS_LOG", "-") or None  # "" turns it off
timeout = 30

# Prometheus multiprocess mode: workers write samples to files in this directory,
# which must exist (and be empty) before any worker imports prometheus-client.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="tessera-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
