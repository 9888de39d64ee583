"""Sessions named by device ("Chrome on Linux", "Safari on iPhone") from the User-Agent.

The parsing is ua-parser's (the Python port of uap-core, the rules Browserscope and
most analytics use; ``ua-parser-builtins`` ships the regexes, refreshed monthly), so no
hand-kept list of browsers ages here. A name is a label for people, never a security
decision: the raw string stays stored and shown to admins.
"""

from __future__ import annotations

import functools

from ua_parser import parse

__all__ = ["device_name"]

# Headers are capped before parsing: the rules are regexes, and a name needs no more.
_MAX_PARSED = 512
_OS_NAMES = {"Mac OS X": "macOS"}
_NAMED_DEVICES = frozenset({"iPhone", "iPad", "iPod"})  # more telling than "iOS"


@functools.lru_cache(maxsize=1024)
def device_name(user_agent: str | None) -> str:
    """A short name for the client that sent ``user_agent`` ("Unknown device" when none)."""
    if not user_agent:
        return "Unknown device"
    found = parse(user_agent[:_MAX_PARSED])
    browser = found.user_agent.family if found.user_agent else None
    if browser:
        browser = browser.removeprefix("Mobile ").removesuffix(" Mobile")
    device = found.device.family if found.device else None
    system = found.os.family if found.os else None
    if device in _NAMED_DEVICES:
        place: str | None = device
    elif system == "Android" and device and device not in ("Generic Smartphone", "K"):
        place = device
    else:
        place = _OS_NAMES.get(system or "", system)
    if browser and place:
        return f"{browser} on {place}"
    return browser or place or "Unknown device"
