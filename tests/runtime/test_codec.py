"""V2 tensor codec: JSON and binary bodies round-trip exactly; malformed headers are clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from outrider_runtime.errors import BadRequestError
from outrider_runtime.server.codec import decode_request, encode_response


def _json_outputs(body: bytes) -> dict[str, list[object]]:
    return {o["name"]: o["data"] for o in json.loads(body)["outputs"]}


def test_json_outputs_read_back_to_the_same_values() -> None:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((2, 384)).astype(np.float32)
    outputs = {
        "emb": ("FP32", emb),
        "half": ("FP16", emb[:, :8].astype(np.float16)),
        "wide": ("FP64", emb[:, :4].astype(np.float64) / 3),
        "ids": ("INT64", np.arange(6, dtype=np.int64).reshape(2, 3)),
        "flags": ("BOOL", np.array([True, False])),
        "swapped": ("FP32", np.array([1.5, -2.25], dtype=">f4")),
        "strided": ("FP32", emb[:, ::96]),
        "text": ("BYTES", np.array([b"caf\xc3\xa9", "plain"], dtype=np.object_)),
    }
    body, header_len = encode_response({"model_name": "m", "id": "r1"}, outputs, binary=set())
    assert header_len is None
    data = _json_outputs(body)
    assert np.array_equal(np.array(data["emb"], dtype=np.float32), emb.reshape(-1))
    assert np.array_equal(np.array(data["half"], dtype=np.float16), emb[:, :8].astype(np.float16).reshape(-1))
    assert np.array_equal(np.array(data["wide"]), (emb[:, :4].astype(np.float64) / 3).reshape(-1))
    assert data["ids"] == [0, 1, 2, 3, 4, 5]
    assert data["flags"] == [True, False]
    assert data["swapped"] == [1.5, -2.25]
    assert np.array_equal(np.array(data["strided"], dtype=np.float32), emb[:, ::96].reshape(-1))
    assert data["text"] == ["café", "plain"]
    doc = json.loads(body)
    assert doc["id"] == "r1" and doc["outputs"][0]["shape"] == [2, 384]


def test_binary_outputs_follow_the_json_header() -> None:
    emb = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    body, header_len = encode_response({"model_name": "m"}, {"emb": ("FP32", emb)}, binary={"emb"})
    assert header_len is not None
    head = json.loads(body[:header_len])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == emb.nbytes
    assert np.array_equal(np.frombuffer(body[header_len:], dtype=np.float32).reshape(3, 4), emb)


def test_request_header_errors_name_the_problem() -> None:
    with pytest.raises(BadRequestError, match="not valid JSON"):
        decode_request(b'{"inputs": [', None)
    with pytest.raises(BadRequestError, match="non-empty 'inputs'"):
        decode_request(b'{"inputs": []}', None)
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.5, 2]}]})
    _, tensors = decode_request(body.encode(), None)
    assert tensors["x"].dtype == np.float32 and tensors["x"].tolist() == [1.5, 2.0]


def test_non_finite_outputs_are_null_and_non_standard_literals_are_refused() -> None:
    body, _ = encode_response({}, {"x": ("FP32", np.array([1.0, np.nan, np.inf], dtype=np.float32))}, set())
    assert _json_outputs(body)["x"] == [1.0, None, None]
    bad = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [NaN]}]}'
    with pytest.raises(BadRequestError, match="not valid JSON"):
        decode_request(bad, None)
