"""``outrider forecast serve``: forecast every InferenceDeployment from Prometheus and publish it.

Reads the runtime's request counter through Prometheus ``query_range``, forecasts each
deployment's next ``spec.scaling.forecastHorizonSeconds`` and applies ``status.forecast`` and
the ``Forecasting`` condition (field manager ``outrider-forecaster``). Prometheus being down
gives ``Forecasting=False`` with reason ``MetricsUnavailable``; the process keeps running.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from outrider_cli.bootstrap import (
    add_logging_arguments,
    kube_client_or_report,
    setup_logging,
    stop_event,
)

__all__ = ["add_serve_parser"]


def _serve(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from outrider_operator.kube.rest import KubeRest

    from .errors import ForecastError
    from .metrics import ForecastMetrics
    from .prometheus import DEFAULT_QUERY, PrometheusSource
    from .publisher import ForecastPublisher, run_forever
    from .service import ForecasterService, ForecasterSettings

    setup_logging(args.log_format, args.log_level)
    if args.interval <= 0:
        print("outrider forecast serve: --interval must be > 0", file=sys.stderr)
        return 2
    try:
        settings = ForecasterSettings().with_recalibration(args.recalibrate_seconds)
    except ForecastError as exc:
        print(f"outrider forecast serve: --recalibrate-seconds: {exc}", file=sys.stderr)
        return 2
    api_client = kube_client_or_report(args.kubeconfig, "outrider forecast serve")
    if api_client is None:
        return 2
    metrics = ForecastMetrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, registry=metrics.registry)
    source = PrometheusSource(args.prometheus_url, query_template=args.query or DEFAULT_QUERY)
    service = ForecasterService(source, settings=settings, metrics=metrics)
    publisher = ForecastPublisher(KubeRest(api_client), service, namespaces=tuple(args.namespace))
    stop = stop_event()
    scope = ", ".join(args.namespace) or "every namespace"
    logging.getLogger(__name__).info(
        "forecasting %s from %s every %.0fs", scope, args.prometheus_url, args.interval
    )
    try:
        run_forever(publisher, args.interval, stop)
    finally:
        service.close()
    return 0


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand to the ``forecast`` subparsers."""
    sv = sub.add_parser("serve", help="Forecast every InferenceDeployment and publish into its status.")
    sv.add_argument(
        "--prometheus-url",
        default=os.environ.get("OUTRIDER_PROMETHEUS_URL", "http://prometheus-operated.monitoring:9090"),
        help="Prometheus base URL (env OUTRIDER_PROMETHEUS_URL).",
    )
    sv.add_argument("--query", default=None, help="query_range template with {namespace} and {deployment}.")
    sv.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig (default in-cluster)."
    )
    sv.add_argument("--interval", type=float, default=10.0, help="Seconds between cycles (default 10).")
    sv.add_argument(
        "--recalibrate-seconds",
        type=int,
        default=os.environ.get("OUTRIDER_RECALIBRATE_SECONDS", "60"),  # argparse converts it
        help="Seconds between a deployment's recalibrations (default 60; env OUTRIDER_RECALIBRATE_SECONDS). "
        "One core keeps about 120 deployments at 60 s and about 600 at 300 s (docs/forecaster.md).",
    )
    sv.add_argument("--metrics-port", type=int, default=0, help="Serve /metrics on this port (0: off).")
    sv.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="Forecast InferenceDeployments of this namespace only (repeatable; default: all).",
    )
    add_logging_arguments(sv)
    sv.set_defaults(func=_serve)
