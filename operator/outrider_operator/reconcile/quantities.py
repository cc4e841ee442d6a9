"""Parse the Kubernetes quantities the API uses (memory sizes) without the kubernetes client."""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["parse_quantity_mib"]

_SUFFIX = {
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "m": Decimal("0.001"),
}
_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")


def parse_quantity_mib(value: str) -> int:
    """Return a byte quantity (e.g. ``16Gi``, ``500M``) in whole MiB, rounded up.

    Raises ValueError naming the value when it is not a quantity.
    """
    match = _RE.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 16Gi or 500M")
    number = Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]
    mib = number / Decimal(2**20)
    whole = int(mib)
    return whole if mib == whole else whole + 1
