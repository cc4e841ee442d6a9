"""``outrider runtime ...``: serve a model, build a builtin model, render a Triton repository."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from outrider_cli.bootstrap import add_logging_arguments, setup_logging
from outrider_runtime.config import RuntimeConfig, load_config
from outrider_runtime.errors import OutriderRuntimeError

__all__ = ["register", "serve"]

log = logging.getLogger("outrider_runtime")


async def serve(
    config: RuntimeConfig,
    port: int | None = None,
    ready_file: Path | None = None,
    grpc_port: int | None = None,
) -> int:
    """Run HTTP (and gRPC) until SIGTERM/SIGINT, then drain in-flight requests and exit."""
    from aiohttp import web

    from outrider_runtime.pipeline import describe_providers
    from outrider_runtime.server import ModelService, build_app
    from outrider_runtime.server.grpc_transport import start_grpc

    log.info("%s", describe_providers())
    server = ModelService(config)
    app = build_app(server)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    http_port = config.server.http_port if port is None else port
    site = web.TCPSite(runner, config.server.host, http_port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else http_port
    grpc_server, grpc_bound = await start_grpc(
        server, config.server.host, config.server.grpc_port if grpc_port is None else grpc_port
    )
    log.info("listening on %s: http %s, grpc %s", config.server.host, bound, grpc_bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    failed: list[BaseException] = []

    def _loaded(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            log.error("model load failed: %s", exc)
            failed.append(exc)
            stop.set()

    loader = asyncio.create_task(server.start_models())
    loader.add_done_callback(_loaded)
    if ready_file is not None:
        ready_file.write_text(json.dumps({"port": bound, "grpcPort": grpc_bound}))
    await stop.wait()
    log.info("draining" if not failed else "stopping after a failed load")
    await server.drain()
    if not loader.done():
        loader.cancel()
    await grpc_server.stop(grace=1.0)
    await runner.cleanup()
    server.close()
    log.info("stopped")
    return 1 if failed else 0


def _serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.log_level)
    try:
        config = load_config(args.config) if args.config else RuntimeConfig()
        ready = Path(args.ready_file) if args.ready_file else None
        return asyncio.run(serve(config, args.port, ready, args.grpc_port))
    except OutriderRuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _build(args: argparse.Namespace) -> int:
    from outrider_runtime.builtin_models import ensure_builtin

    print(ensure_builtin(args.name))
    return 0


def _render(args: argparse.Namespace) -> int:
    from outrider_runtime.triton_repo import render_repository

    config = load_config(args.config)
    files = render_repository(config, Path(args.output))
    for f in files:
        print(f)
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``runtime`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="runtime_command", metavar="ACTION", required=True)
    p = sub.add_parser("serve", help="Serve the configured model over KServe V2 / Triton HTTP.")
    p.add_argument("--config", help="RuntimeConfig YAML/JSON file (default: builtin MiniLM, fp32).")
    p.add_argument("--port", type=int, help="Override server.httpPort (0 = any free port).")
    p.add_argument("--grpc-port", type=int, help="Override server.grpcPort (0 = any free port).")
    p.add_argument("--ready-file", help="Write {'port': N, 'grpcPort': M} here once the sockets are bound.")
    add_logging_arguments(p)
    p.set_defaults(func=_serve)
    b = sub.add_parser("build-model", help="Build (and cache) a builtin ONNX model; prints its directory.")
    b.add_argument("name", choices=["all-minilm-l6-v2", "tiny-bert"])
    b.set_defaults(func=_build)
    t = sub.add_parser("render-triton", help="Render a Triton model repository for engine=triton.")
    t.add_argument("--config", required=True)
    t.add_argument("--output", required=True)
    t.set_defaults(func=_render)


def main() -> int:
    """``python -m outrider_runtime.cli``."""
    parser = argparse.ArgumentParser(prog="outrider runtime")
    register(parser)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
