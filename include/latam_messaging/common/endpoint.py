"""An entry of a vendor's endpoint table (its ``contract.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    #: Where we know it from: SEED, DOC, CODE or INFERRED (see vendor-apis.md).
    source: str
