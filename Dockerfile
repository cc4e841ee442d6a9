# syntax=docker/dockerfile:1.7
# One image for every Outrider component; choose the entrypoint with the command:
#   outrider-operator                      the operator (kopf)
#   outrider extender serve                the kube-scheduler extender + forecaster
#   outrider runtime serve --config FILE   the per-node model server
#   outrider check-environment             GPU discovery on this node

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN pip install --no-cache-dir "uv==0.13.9"
# requirements-image.lock: the runtime dependencies and the MiniLM weights, pinned to the versions of
# requirements.lock, without the dev tools and the backtest-only Prophet
COPY requirements-image.lock pyproject.toml README.md ./
RUN uv venv /opt/outrider --python "python${PYTHON_VERSION}" \
 && uv pip install --python /opt/outrider/bin/python --no-cache -r requirements-image.lock
COPY operator ./operator
COPY scheduler ./scheduler
COPY runtime ./runtime
COPY hack/outrider_devcluster ./hack/outrider_devcluster
RUN uv pip install --python /opt/outrider/bin/python --no-cache --no-deps .

FROM python:${PYTHON_VERSION}-slim-bookworm AS final
LABEL org.opencontainers.image.title="outrider" \
      org.opencontainers.image.description="Predictive inference serving for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 outrider \
 && useradd --system --uid 10001 --gid outrider --home-dir /home/outrider --create-home outrider
COPY --from=build /opt/outrider /opt/outrider
ENV PATH="/opt/outrider/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    OUTRIDER_CACHE_DIR=/var/cache/outrider
RUN mkdir -p /var/cache/outrider && chown outrider:outrider /var/cache/outrider
USER 10001:10001
WORKDIR /home/outrider
EXPOSE 8000 8001 8080 8765
ENTRYPOINT []
CMD ["outrider", "--help"]
