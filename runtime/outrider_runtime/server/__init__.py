"""The runtime's server: one model service (:mod:`.service`) behind two transports, HTTP
(:mod:`.http_transport`) and gRPC (:mod:`.grpc_transport`), each depending on the service only."""

from outrider_runtime.server.http_transport import build_app
from outrider_runtime.server.service import ModelService

__all__ = ["ModelService", "build_app"]
