"""gunicorn settings; each may be overridden with the usual GUNICORN_CMD_ARGS."""

import os

bind = os.environ.get("TESSERA_BIND", "127.0.0.1:8000")
# Embedded default: one worker with threads (SQLite, in-memory limits). Production
# (DATABASE_URL + REDIS_URL) sets TESSERA_WORKERS to use several.
workers = int(os.environ.get("TESSERA_WORKERS", "1"))
threads = int(os.environ.get("TESSERA_THREADS", "4"))
worker_class = "gthread"
accesslog = "-"
timeout = 30
