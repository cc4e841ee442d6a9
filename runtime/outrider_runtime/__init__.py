"""Outrider per-node runtime: a KServe V2 / Triton protocol model server with sharded, mixed-precision execution."""
