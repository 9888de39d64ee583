"""Print the README's settings table from app/config.py (the one source of defaults)."""

import sys
from pathlib import Path

# The checkout's `app` (installed, the package is `tessera`; the editable install too).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import setting_docs


def _shown(default: object) -> str:
    if default is None or default == ():
        return "unset"
    return f"`{str(default).lower() if isinstance(default, bool) else default}`"


print("| setting | default | what it does |")
print("| --- | --- | --- |")
for name, default, doc in setting_docs():
    print(f"| `{name}` | {_shown(default)} | {doc} |")
