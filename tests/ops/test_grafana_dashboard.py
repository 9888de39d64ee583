"""The Grafana dashboard in deploy/ is built on metrics Tessera really exports (issue 19)."""

from __future__ import annotations

import json
import re
import time

import jwt

from tests.support.servers import ROOT
from tests.support.tokens import bearer, make_user

DASHBOARD = ROOT / "deploy" / "grafana" / "tessera-dashboard.json"
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def test_every_metric_the_dashboard_queries_is_exported(make_app, redis_url) -> None:  # type: ignore[no-untyped-def]
    app = make_app(REDIS_URL=redis_url, LEGACY_HS256_SECRETS=["s" * 32], MIGRATION_PHASE="dual")
    make_user(app, "alice")
    client = app.test_client()
    legacy = jwt.encode({"sub": "1", "exp": int(time.time()) + 600}, "s" * 32, algorithm="HS256")
    assert client.get("/api/me", headers=bearer(legacy)).status_code == 200  # every family
    exported = {line.split(" ")[2] for line in client.get("/metrics").get_data(as_text=True)
                .splitlines() if line.startswith("# TYPE ")}
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\btessera_[a-z0-9_]+", target["expr"])}
    assert len(queried) >= 12
    for name in queried:
        base = next((name[:-len(s)] for s in _SUFFIXES if name.endswith(s)), name)
        assert name in exported or base in exported, name
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
