"""First-seen verification: the strict verifier against joserfc, on the same tokens.

The figures behind the README's decision to keep a hand-written strict parser:
per token, in batches of 100 interleaved, the raw ECDSA P-256 verify (the floor,
DER pre-encoded), ``tessera_verifier.verify_compact`` (everything of SPEC §3
steps 1-5), joserfc's ``deserialize_compact`` (signature only), and joserfc
followed by the same typ and claim checks. Prints µs per token and the ratio to
the floor (median of per-batch ratios). No app, no database.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.util import urlsafe_b64decode
from tessera_verifier import ACCESS_PROFILE, StaticKeySet, TokenPolicy, verify_compact
from tessera_verifier.claims import check_claims, check_typ

TOKENS, BATCH, PASSES = 3000, 100, 3
ISSUER = "https://tessera.example"


def _batch(fn: Callable[[Any], object], items: Sequence[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def main() -> dict[str, tuple[float, float]]:
    """µs per token (median batch) and ratio to the floor, per verifier."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's app
    from app.core.keyring import SigningMaterial, VerificationKey
    from app.core.tokens import access_claims, sign_token

    private = ECKey.generate_key("P-256", private=True)
    public = ECKey.import_key(private.as_dict(private=False))
    keys = StaticKeySet([VerificationKey("k1", "ES256", public, "active")])
    policy = TokenPolicy(issuer=ISSUER, audience=ISSUER + "/api", leeway=30, max_bytes=8192)
    now = int(time.time())
    tokens = [sign_token(SigningMaterial("k1", "ES256", private), access_claims(
        issuer=ISSUER, audience=ISSUER + "/api", user_id=i + 1, session_id=f"s{i}",
        client_id="web", scope="notes:read notes:write", roles=[], auth_time=now, amr=["pwd"],
        acr="aal1", now=now, ttl=900)) for i in range(TOKENS)]
    op_key, algorithm = public.get_op_key("verify"), ec.ECDSA(SHA256())
    floor_items = []
    for token in tokens:
        head, body, sig = token.split(".")
        raw = urlsafe_b64decode(sig.encode())
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        floor_items.append(((head + "." + body).encode(), der))

    def joserfc_with_claims(token: str) -> None:
        obj = jws.deserialize_compact(token, public, algorithms=["ES256"])
        check_typ(obj.protected, ACCESS_PROFILE)
        check_claims(json.loads(obj.payload), policy, ACCESS_PROFILE)

    runs: dict[str, tuple[Callable[[Any], object], Sequence[Any]]] = {
        "floor": (lambda it: op_key.verify(it[1], it[0], algorithm), floor_items),
        "strict verifier": (lambda t: verify_compact(t, keys, policy, time.time()), tokens),
        "joserfc (signature only)": (
            lambda t: jws.deserialize_compact(t, public, algorithms=["ES256"]), tokens),
        "joserfc + the same claim checks": (joserfc_with_claims, tokens),
    }
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(PASSES):
        for start in range(0, TOKENS, BATCH):
            for name, (fn, items) in runs.items():
                samples[name].append(_batch(fn, items[start:start + BATCH]))
    floor = samples["floor"]
    return {name: (statistics.median(times) / BATCH * 1e6,
                   statistics.median(f / t for f, t in zip(floor, times, strict=True)))
            for name, times in samples.items()}


if __name__ == "__main__":
    for name, (micros, ratio) in main().items():
        print(f"{name:<32} {micros:6.1f} µs/token  ratio to the floor {ratio:.3f}")
