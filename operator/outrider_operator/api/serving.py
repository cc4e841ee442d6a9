"""What each serving replica runs: the model and where its weights are, the engine, image and resources."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from outrider_operator.api.base import ApiModel
from outrider_operator.api.patterns import (
    CPU_QUANTITY,
    DNS_LABEL,
    IMAGE_REF,
    LABEL_VALUE,
    MEMORY_QUANTITY,
    MODEL_URI,
)

__all__ = [
    "DEFAULT_IMAGE",
    "Engine",
    "ModelFormat",
    "ModelSpec",
    "ResourceSpec",
    "RuntimeSpec",
    "SecretReference",
]

DEFAULT_IMAGE = "ghcr.io/outrider-dev/outrider-runtime:0.1.0"
"""Image used for serving pods when ``spec.runtime.image`` is not set: the Dockerfile's ``runtime``
target (the model server without the control-plane packages)."""


class ModelFormat(StrEnum):
    """Serialisation format of the model's weights."""

    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TENSORRT_PLAN = "tensorrt_plan"


class Engine(StrEnum):
    """Which model server runs in the serving pods."""

    OUTRIDER = "outrider"
    TRITON = "triton"


class SecretReference(ApiModel):
    """A reference to a Secret in the InferenceDeployment's namespace."""

    name: str = Field(pattern=DNS_LABEL, max_length=253, description="Name of the Secret.")


class ModelSpec(ApiModel):
    """Which model to serve and where its weights are."""

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=63,
        description="Model name as served over the V2 protocol (a DNS label, e.g. minilm).",
    )
    uri: str = Field(
        pattern=MODEL_URI,
        max_length=1024,
        description=(
            "Where the weights are: pvc://CLAIM/path (the claim is mounted read-only in serving pods), "
            "an absolute path inside the image, or builtin:NAME for a model shipped with the runtime. "
            "s3://bucket/key and hf://org/repo[@revision] pass the schema but are reported as "
            "InvalidSpec until the fetch initContainer exists."
        ),
    )
    format: ModelFormat = Field(default=ModelFormat.ONNX, description="Format of the model files.")
    storage_secret_ref: SecretReference | None = Field(
        default=None, description="Secret with credentials for s3:// or hf:// (reserved; not used yet)."
    )


class ResourceSpec(ApiModel):
    """CPU and memory for each serving container, as Kubernetes quantities."""

    cpu: str = Field(
        default="1",
        pattern=CPU_QUANTITY,
        max_length=16,
        description="CPU request and limit per replica: cores (at most 9999, e.g. 2 or 0.5) or millicores.",
    )
    memory: str = Field(
        default="2Gi",
        pattern=MEMORY_QUANTITY,
        max_length=16,
        description="Memory request and limit per replica: bytes, or at most 99999 k/M/G/T or Ki/Mi/Gi/Ti.",
    )


class RuntimeSpec(ApiModel):
    """The serving engine and what each replica needs."""

    engine: Engine = Field(default=Engine.OUTRIDER, description="Model server: outrider (ours) or triton.")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=IMAGE_REF,
        description=(
            "Container image of the model server. Unset: the operator's runtime image (its release's, "
            "or its --runtime-image), so an operator upgrade moves the deployments that do not pin one; "
            "status.image shows the image in use."
        ),
    )
    resources: ResourceSpec = Field(default_factory=ResourceSpec, description="CPU and memory per replica.")
    gpus_per_replica: int = Field(
        default=1, ge=0, le=16, description="nvidia.com/gpu requested by each replica (0 = CPU only)."
    )
    min_gpu_memory: str | None = Field(
        default=None,
        pattern=MEMORY_QUANTITY,
        max_length=16,
        description="Minimum free memory on each GPU, e.g. 16Gi (optional).",
    )
    gpu_products: list[Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE)]] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Preferred GPU products in order, e.g. [H100, A100]: preferred node affinity on the node "
            "agent's outrider.dev/gpu-product label (earlier entries weigh more; other nodes stay eligible)."
        ),
    )
    gpu_architectures: list[Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE)]] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Preferred GPU architectures in order, e.g. [hopper, ampere]: preferred node affinity on the "
            "outrider.dev/gpu-architecture label."
        ),
    )
    max_workers: int = Field(default=4, ge=1, le=64, description="Request worker threads per replica.")
