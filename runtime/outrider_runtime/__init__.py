"""Outrider per-node runtime: a KServe V2 / Triton protocol model server.

Sharded, mixed-precision ONNX Runtime execution with live-resizable dynamic batching.
"""
