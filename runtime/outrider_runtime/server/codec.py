"""Encode and decode V2 tensors: JSON ``data`` and Triton's binary tensor data extension.

A binary request carries the header ``Inference-Header-Content-Length: N``: the first N bytes are
the JSON inference header, the rest are raw tensors in input order, each input naming its size in
``parameters.binary_data_size``. BYTES tensors are serialised as a 4-byte little-endian length
followed by the bytes, per element. Responses mirror this when the request asks for binary outputs.

JSON goes through orjson: numeric output tensors are written straight from their numpy buffers in
the shortest form that reads back to the same value (a 384-float embedding response is about 4 KB
instead of 8 KB and takes microseconds, not a tenth of a millisecond, to encode). JSON proper has no
NaN or infinity: such output values are written as ``null``, and a request header that uses the
non-standard ``NaN``/``Infinity`` literals is a 400 (send such tensors as binary data instead).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from outrider_runtime.errors import BadRequestError

__all__ = ["DTYPES", "HEADER", "decode_bytes_tensor", "decode_request", "encode_bytes", "encode_response"]

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
HEADER = "Inference-Header-Content-Length"
ShapeCheck = Callable[[str, str, list[int]], None]
"""Called with each input's name, datatype and declared shape before its data is decoded."""
_NATIVE_JSON = frozenset("?bhilqBHILQfd")
"""numpy type codes orjson serialises from the array buffer (bool, integers, float32, float64)."""


def _json_data(arr: np.ndarray) -> Any:
    """The ``data`` value of a JSON output tensor: a flat numpy array orjson can write, or a list."""
    flat = arr.reshape(-1)
    if flat.dtype.char in _NATIVE_JSON and flat.dtype.isnative:
        return np.ascontiguousarray(flat)
    if flat.dtype == np.float16:
        return np.ascontiguousarray(flat.astype(np.float32))  # every fp16 value is exact in fp32
    return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in flat.tolist()]


def decode_bytes_tensor(raw: bytes, count: int, name: str) -> np.ndarray:
    """Decode a BYTES tensor in the binary extension format (4-byte length, bytes, per element)."""
    out: list[bytes] = []
    off = 0
    while off < len(raw):
        if len(out) == count:  # stop at once: a lying shape must not make us decode a million items
            raise BadRequestError(f"input {name!r}: shape holds {count} elements but more were sent")
        if off + 4 > len(raw):
            raise BadRequestError(f"input {name!r}: truncated BYTES element length")
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        if off + n > len(raw):
            raise BadRequestError(f"input {name!r}: BYTES element overruns the tensor data")
        out.append(raw[off : off + n])
        off += n
    if len(out) != count:
        raise BadRequestError(f"input {name!r}: shape holds {count} elements but {len(out)} were sent")
    return np.array(out, dtype=np.object_)


def encode_bytes(arr: np.ndarray) -> bytes:
    """Serialise a BYTES tensor (elements ``bytes`` or ``str``) in the binary extension format."""
    parts = []
    for item in arr.reshape(-1):
        b = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _shape(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and d >= 0 for d in value):
        raise BadRequestError(f"input {name!r}: shape must be a list of non-negative integers, got {value!r}")
    return value


def decode_request(
    body: bytes, header_length: int | None, check: ShapeCheck | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a request into its JSON header and decoded input tensors (by name).

    ``check`` sees each input's declared shape before any of its data is decoded.
    """
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise BadRequestError(f"{HEADER} is {header_length} but the body has {len(body)} bytes")
        head_raw, tail = body[:header_length], body[header_length:]
    else:
        head_raw, tail = body, b""
    try:
        header = orjson.loads(head_raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise BadRequestError("request must be a JSON object with a non-empty 'inputs' list")
    tensors: dict[str, np.ndarray] = {}
    off = 0
    for spec in header["inputs"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequestError("every input needs a 'name'")
        name = spec["name"]
        dtype_name = spec.get("datatype")
        if dtype_name not in DTYPES:
            raise BadRequestError(f"input {name!r}: unknown datatype {dtype_name!r}")
        shape = _shape(spec.get("shape"), name)
        if check is not None:
            check(name, dtype_name, shape)
        count = math.prod(shape)  # Python ints: a huge shape cannot wrap around to a small count
        params = spec.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequestError(f"input {name!r}: 'parameters' must be a JSON object")
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or off + size > len(tail):
                raise BadRequestError(f"input {name!r}: binary_data_size {size!r} exceeds the binary data")
            raw = tail[off : off + size]
            off += size
            if dtype_name == "BYTES":
                arr = decode_bytes_tensor(raw, count, name)
            else:
                dt = np.dtype(DTYPES[dtype_name])
                if len(raw) != count * dt.itemsize:
                    raise BadRequestError(
                        f"input {name!r}: {len(raw)} bytes do not match shape {shape} of {dtype_name}"
                    )
                arr = np.frombuffer(raw, dtype=dt)
        else:
            if "data" not in spec:
                raise BadRequestError(f"input {name!r}: has neither 'data' nor binary_data_size")
            if isinstance(spec["data"], list) and len(spec["data"]) > count:  # before numpy copies it
                raise BadRequestError(
                    f"input {name!r}: shape {shape} needs {count} elements, got {len(spec['data'])} or more"
                )
            try:
                if dtype_name == "BYTES":
                    flat = np.array(spec["data"], dtype=np.object_).reshape(-1)
                    odd = next((x for x in flat if not isinstance(x, str)), None)
                    if odd is not None:
                        kind = type(odd).__name__
                        raise BadRequestError(
                            f"input {name!r}: BYTES data must be strings, got {kind} {odd!r:.40}"
                        )
                    arr = np.array([x.encode() for x in flat], dtype=np.object_)
                else:
                    arr = np.array(spec["data"], dtype=DTYPES[dtype_name]).reshape(-1)
            except (ValueError, TypeError) as exc:
                raise BadRequestError(
                    f"input {name!r}: data does not match datatype {dtype_name}: {exc}"
                ) from exc
            if arr.size != count:
                raise BadRequestError(f"input {name!r}: shape {shape} needs {count} elements, got {arr.size}")
        if name in tensors:
            raise BadRequestError(f"input {name!r} appears more than once")
        tensors[name] = arr.reshape(shape)
    return header, tensors


def encode_response(
    header: dict[str, Any], outputs: dict[str, tuple[str, np.ndarray]], binary: set[str]
) -> tuple[bytes, int | None]:
    """Build a response body from ``outputs`` (name -> (V2 datatype, array)); returns body, header length."""
    out_specs = []
    blobs = []
    for name, (dtype_name, arr) in outputs.items():
        spec: dict[str, Any] = {"name": name, "datatype": dtype_name, "shape": list(arr.shape)}
        if name in binary:
            raw = encode_bytes(arr) if dtype_name == "BYTES" else np.ascontiguousarray(arr).tobytes()
            spec["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            spec["data"] = _json_data(arr)
        out_specs.append(spec)
    resp = {k: v for k, v in header.items() if k in ("model_name", "model_version", "id", "parameters")}
    resp["outputs"] = out_specs
    head = orjson.dumps(resp, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
