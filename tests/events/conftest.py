"""The verifier package's source on the path: its feed modules need nothing else of it."""

from __future__ import annotations

import sys

from tests.support.servers import ROOT

if str(ROOT / "verifier" / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "verifier" / "src"))
