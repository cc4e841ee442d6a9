"""String patterns (regular expressions) that the spec's fields are validated against.

Each becomes a ``pattern`` in the generated CRD, so the apiserver and the models accept the same
strings. Quantities are bounded so that the apiserver never rounds them.
"""

from __future__ import annotations

__all__ = [
    "CPU_QUANTITY",
    "DECIMAL_0_1",
    "DNS_LABEL",
    "DNS_SUBDOMAIN",
    "IMAGE_REF",
    "LABEL_VALUE",
    "MEMORY_QUANTITY",
    "MODEL_URI",
    "QUALIFIED_NAME",
]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS label (RFC 1123): lower-case alphanumerics and dashes; the length is set by ``max_length``."""
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A DNS subdomain (RFC 1123): dot-separated DNS labels; the length is set by ``max_length``."""
CPU_QUANTITY = r"^([0-9]{1,4}(\.[0-9]{1,3})?|[0-9]{1,7}m)$"
"""Cores (at most 9999, three decimals) or millicores: bounded, so the apiserver never rounds it."""
MEMORY_QUANTITY = r"^([0-9]{1,15}|[0-9]{1,5}(\.[0-9]{1,3})?(k|M|G|T|Ki|Mi|Gi|Ti))$"
"""Bytes, or at most 99999 of a decimal or binary unit up to T/Ti: bounded, never rounded."""
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A Kubernetes label value (at most 63 characters, set by ``max_length``)."""
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
"""A label key or taint key: an optional DNS-subdomain prefix and a name of at most 63 characters."""
IMAGE_REF = r"^[^\s]+$"
"""A container image reference: no whitespace (the kubelet refuses such an image only at pull)."""
DECIMAL_0_1 = r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$"
"""A decimal string between 0 and 1 with at most four decimals."""
MODEL_URI = r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?|s3://[^/\s]+(/\S*)?|hf://[^/\s]+/[^/\s]+(@\S+)?|/\S*|builtin:[a-z0-9.-]+)$"
"""Where model weights are: ``pvc://``, ``s3://``, ``hf://``, an absolute path or ``builtin:NAME``."""
