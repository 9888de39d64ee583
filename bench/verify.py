"""In-process verification speed against the raw ECDSA floor (issues 3 and 10).

Measures, in one run and on the same tokens:
- floor: `cryptography` ECDSA P-256 verify of each token's signature (DER, pre-encoded);
- first-seen: Tessera's full verification (strict parsing, alg/kid, signature,
  typ/iss/aud/exp/nbf/iat and claim types; no revocation lookup), no cache;
- repeated: the same token verified again in a process that has seen it
  (the verified-token cache; time claims still checked).
Prints the rates and ratios and writes bench/results/verify.json.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask_migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app, state  # noqa: E402
from app.core.tokens import VerifiedTokenCache, access_claims, sign_token, verify_token  # noqa: E402
from app.security import snapshot, token_policy  # noqa: E402
from app.security.keyops import ensure_signing_keys  # noqa: E402

TOKENS = 20_000
BATCH = 100  # tokens per timed batch: short enough that most batches see no interruption
PASSES = 5


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _batch_seconds(fn, items) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def main() -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    kek = base64.urlsafe_b64encode(b"b" * 32).decode()
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/bench.db", "KEY_ENCRYPTION_KEY": kek},
                     instance_path=str(tmp))
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
        ensure_signing_keys()
        snap, policy = snapshot(), token_policy()
        signer = snap.current_signer()
        s = state.settings()
        now = int(time.time())
        tokens = [
            sign_token(signer, access_claims(
                issuer=s.issuer, audience=s.access_audience, user_id=i + 1, session_id=f"s{i}",
                client_id="web", scope="notes:read notes:write", roles=[], auth_time=now,
                amr=["pwd"], acr="aal1", now=now, ttl=900))
            for i in range(TOKENS)
        ]
    public = snap.keys[signer.kid].key.get_op_key("verify")
    floor_items = []
    for token in tokens:
        head, body, sig = token.split(".")
        raw = _b64decode(sig)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        floor_items.append(((head + "." + body).encode(), der))
    algorithm = ec.ECDSA(hashes.SHA256())
    cache = VerifiedTokenCache()
    for token in tokens:  # warm the cache for the repeated path
        verify_token(token, snap, policy, time.time(), cache=cache)

    # Interleaved batches, the fastest batch of each kind kept: a VM's host steals
    # the CPU for milliseconds at a time, and the minimum is the cost without that
    # (as timeit advises). Each first-seen batch is of tokens its cache has not seen.
    fastest = {"floor": math.inf, "first_seen": math.inf, "repeated": math.inf}
    for _ in range(PASSES):
        fresh = VerifiedTokenCache()  # every token unseen; only the shared header is warm
        for start in range(0, TOKENS, BATCH):
            batch = slice(start, start + BATCH)
            times = {
                "floor": _batch_seconds(lambda it: public.verify(it[1], it[0], algorithm),
                                        floor_items[batch]),
                "first_seen": _batch_seconds(
                    lambda t: verify_token(t, snap, policy, time.time(), cache=fresh), tokens[batch]),
                "repeated": _batch_seconds(
                    lambda t: verify_token(t, snap, policy, time.time(), cache=cache), tokens[batch]),
            }
            for name, seconds in times.items():
                fastest[name] = min(fastest[name], seconds)
    best = {name: BATCH / seconds for name, seconds in fastest.items()}
    result = {
        "floor_per_s": round(best["floor"]),
        "first_seen_per_s": round(best["first_seen"]),
        "repeated_per_s": round(best["repeated"]),
        "first_seen_ratio": round(best["first_seen"] / best["floor"], 3),
        "repeated_ratio": round(best["repeated"] / best["floor"], 2),
    }
    return result


if __name__ == "__main__":
    figures = main()
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "verify.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"raw ECDSA P-256 verify (floor): {figures['floor_per_s']:>9,}/s")
    print(f"Tessera first-seen token:        {figures['first_seen_per_s']:>9,}/s  "
          f"ratio {figures['first_seen_ratio']:.3f} (goal >= 0.80)")
    print(f"Tessera repeated token (cache):  {figures['repeated_per_s']:>9,}/s  "
          f"ratio {figures['repeated_ratio']:.1f}x (goal >= 10x)")
