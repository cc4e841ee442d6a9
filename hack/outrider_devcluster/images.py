"""Build Outrider's container images from the project's Dockerfile, without a Docker daemon.

``buildah`` (Debian's package) runs the Dockerfile. Its ``FROM`` is a build argument
(``BASE_IMAGE``, ``python:3.11-slim-bookworm`` by default); no registry is reached here, so the base
is made locally: ``debootstrap --variant=minbase`` of Debian bookworm with ``python3`` (3.11) and
``python3-venv``, committed with buildah as ``localhost/outrider-base:<hash>``. The pods' sandbox
("pause") image is Debian's static busybox.

Each image is cached by content: the hash covers the Dockerfile, ``.dockerignore``, every file the
build context holds and the base image's recipe. The chart's kube-scheduler image
(``registry.k8s.io/kube-scheduler`` at the cluster's Kubernetes version) is the base image plus the
kube-scheduler built from the Go module proxy, so the chart's default image reference is found on
the real nodes without a registry. A built image is written to
``~/.cache/outrider/images/<name>-<hash>.tar`` (a docker-archive tagged with the name pods use),
which the real nodes' containerd imports. A host behind a TLS-inspecting proxy (``SSL_CERT_FILE``
set) has its CA bundle mounted into the build's ``RUN`` steps only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError
from .settings import ClusterSettings, Versions, repo_root

__all__ = [
    "BASE_PACKAGES",
    "IMAGES",
    "ImageSpec",
    "build_timings",
    "built_archive",
    "context_digest",
    "ensure_images",
    "image_size",
]

BASE_SUITE = "bookworm"
"""Debian release of the local base image (its python3 is 3.11, as the Dockerfile expects)."""
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
"""Packages of the local base image beside debootstrap's minimal set."""
_MIRROR = "http://deb.debian.org/debian"
_BUILD_CA = "/run/outrider-build-ca.crt"


@dataclass(frozen=True)
class ImageSpec:
    """One image: the Dockerfile target (or ``pause``) and the name pods refer to."""

    key: str
    """Short name: runtime, control, runtime-gpu, pause."""
    target: str | None
    """Dockerfile target; None for the pause image (not built from the Dockerfile)."""
    reference: str
    """The name pods and the chart use."""


IMAGES: dict[str, ImageSpec] = {
    "pause": ImageSpec("pause", None, "localhost/outrider-pause:1"),
    "runtime": ImageSpec("runtime", "runtime", "ghcr.io/outrider-dev/outrider-runtime:0.1.0"),
    "control": ImageSpec("control", "control", "ghcr.io/outrider-dev/outrider:0.1.0"),
    "runtime-gpu": ImageSpec("runtime-gpu", "runtime-gpu", "ghcr.io/outrider-dev/outrider-runtime-gpu:0.1.0"),
    "kube-scheduler": ImageSpec(
        "kube-scheduler", None, f"registry.k8s.io/kube-scheduler:{Versions().kubernetes}"
    ),
}
"""Every image ``make image`` can build, by key."""
NODE_IMAGES = ("pause", "runtime", "control", "kube-scheduler")
"""Images every real node imports at start (the GPU variant is built on request only)."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _context_files(root: Path) -> Iterator[Path]:
    """Files the Dockerfile's build context holds (mirrors .dockerignore's allow-list)."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml"):
        yield root / name
    yield from sorted(root.glob("requirements-*.lock"))
    for folder in ("operator", "scheduler", "runtime"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path


def context_digest(root: Path | None = None) -> str:
    """A hash of everything the images are built from (16 hex digits)."""
    root = root or repo_root()
    digest = hashlib.sha256()
    digest.update(f"{BASE_SUITE} {' '.join(BASE_PACKAGES)}\n".encode())
    for path in _context_files(root):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _base_digest() -> str:
    return hashlib.sha256(f"{BASE_SUITE} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:12]


def built_archive(settings: ClusterSettings, key: str, digest: str | None = None) -> Path:
    """Where the archive of image ``key`` for the current sources is (or will be) cached."""
    if key == "pause":
        return settings.image_cache / "outrider-pause-1.tar"
    if key == "kube-scheduler":  # the binary's version and the base, not the project's sources
        return settings.image_cache / f"kube-scheduler-{Versions().kubernetes}-{_base_digest()}.tar"
    return settings.image_cache / f"outrider-{key}-{digest or context_digest()}.tar"


class _Runner:
    """Runs build commands, appending their output to one log, naming the failed step."""

    def __init__(self, log: Path) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)

    def run(self, step: str, args: list[str], *, cwd: Path | None = None) -> str:
        """Run ``args``; return its stdout; raise BuildError naming ``step`` and the log."""
        with self.log.open("a") as out:
            out.write(f"$ {' '.join(args)}\n")
            out.flush()
            proc = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=out, text=True, check=False)
            out.write(proc.stdout[-4000:])
        if proc.returncode != 0:
            raise BuildError(step, f"exit status {proc.returncode}", self.log)
        return proc.stdout


def _need(command: str, package: str) -> str:
    found = shutil.which(command)
    if not found:
        raise BuildError(
            f"find {command}",
            f"`{command}` is not installed (Debian package {package}); run `make setup-system`",
        )
    return found


def _buildah_has(buildah: str, reference: str) -> bool:
    proc = subprocess.run(
        [buildah, "inspect", "--type", "image", reference], capture_output=True, check=False
    )
    return proc.returncode == 0


def _ensure_base(buildah: str, runner: _Runner, work: Path) -> tuple[str, bool]:
    """The local base image (debootstrap rootfs committed with buildah): (reference, built now)."""
    reference = f"localhost/outrider-base:{BASE_SUITE}-{_base_digest()}"
    if _buildah_has(buildah, reference):
        return reference, False
    debootstrap = _need("debootstrap", "debootstrap")
    started = time.monotonic()
    _say(
        f"    ... base image: debootstrap {BASE_SUITE} minbase + {', '.join(BASE_PACKAGES)} (about a minute)"
    )
    rootfs = work / "rootfs"
    runner.run(
        "debootstrap the base image",
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
            _MIRROR,
        ],
    )
    for trimmed in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        folder = rootfs / trimmed
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_file() or child.is_symlink():
                    child.unlink()
                elif child.is_dir():
                    shutil.rmtree(child)
    tarball = work / "rootfs.tar"
    runner.run("pack the base rootfs", ["tar", "-C", str(rootfs), "-cf", str(tarball), "."])
    container = runner.run("buildah from scratch", [buildah, "from", "scratch"]).strip()
    try:
        runner.run("add the base rootfs", [buildah, "add", "--quiet", container, str(tarball), "/"])
        runner.run(
            "configure the base image",
            [buildah, "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--cmd", "/bin/bash", container],
        )  # fmt: skip
        runner.run("commit the base image", [buildah, "commit", "--quiet", container, reference])
    finally:
        subprocess.run([buildah, "rm", container], capture_output=True, check=False)
    _say(f"    ok  base image {reference} ({time.monotonic() - started:.0f}s)")
    return reference, True


def _one_file_image(
    buildah: str,
    runner: _Runner,
    *,
    name: str,
    base: str,
    source: Path | str,
    dest: str,
    entrypoint: str,
    user: str,
    archive: Path,
) -> None:
    """An image of ``base`` plus one executable file, with its entrypoint and user; then its archive."""
    container = runner.run(f"buildah from {base} ({name})", [buildah, "from", base]).strip()
    reference = IMAGES[name].reference
    try:
        runner.run(
            f"add {dest}", [buildah, "copy", "--quiet", "--chmod", "0755", container, str(source), dest]
        )
        runner.run(
            f"configure the {name} image",
            [buildah, "config", "--entrypoint", entrypoint, "--cmd", "", "--user", user, container],
        )
        runner.run(f"commit the {name} image", [buildah, "commit", "--quiet", container, reference])
    finally:
        subprocess.run([buildah, "rm", container], capture_output=True, check=False)
    _push(buildah, runner, reference, archive, reference)


def _build_pause(buildah: str, runner: _Runner, archive: Path) -> None:
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).is_file()), None)
    if busybox is None:
        raise BuildError(
            "pause image", "busybox is not installed (package busybox-static); run `make setup-system`"
        )
    # as PID 1 busybox sh has no default signal handlers: trap TERM/INT so a sandbox stops at once
    script = "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done"
    _one_file_image(
        buildah, runner, name="pause", base="scratch", source=busybox, dest="/bin/busybox",
        entrypoint=f'["/bin/busybox", "sh", "-c", "{script}"]', user="65535:65535", archive=archive,
    )  # fmt: skip


def _build_kube_scheduler(
    buildah: str, runner: _Runner, settings: ClusterSettings, base: str, work: Path, archive: Path
) -> None:
    from .binaries import ensure_binaries

    binary = work / "kube-scheduler"
    shutil.copy2(ensure_binaries(settings, ("kube-scheduler",))["kube-scheduler"], binary)
    strip = shutil.which("strip")
    if strip:  # debug sections are half of the binary; the symbols stay (Go needs them)
        runner.run("strip the kube-scheduler's debug sections", [strip, "--strip-debug", str(binary)])
    dest = "/usr/local/bin/kube-scheduler"
    _one_file_image(
        buildah, runner, name="kube-scheduler", base=base, source=binary, dest=dest,
        entrypoint=f'["{dest}"]', user="65532:65532", archive=archive,
    )  # fmt: skip


def _push(buildah: str, runner: _Runner, source: str, archive: Path, reference: str) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    runner.run(
        f"write the {reference} archive",
        [buildah, "push", "--quiet", source, f"docker-archive:{partial}:{reference}"],
    )
    partial.replace(archive)


def _build_target(
    buildah: str, runner: _Runner, spec: ImageSpec, base: str, digest: str, archive: Path
) -> None:
    assert spec.target is not None
    root = repo_root()
    local_tag = f"localhost/outrider-{spec.key}:{digest}"
    args = [
        buildah, "bud", "--isolation", "chroot", "--network", "host", "--layers",
        "--target", spec.target, "--build-arg", f"BASE_IMAGE={base}", "-t", local_tag, "-f", "Dockerfile",
    ]  # fmt: skip
    ca = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
    if ca and Path(ca).is_file():
        args += [
            "-v", f"{Path(ca).resolve()}:{_BUILD_CA}:ro",
            "--build-arg", f"SSL_CERT_FILE={_BUILD_CA}", "--build-arg", f"PIP_CERT={_BUILD_CA}",
        ]  # fmt: skip
    runner.run(f"buildah bud --target {spec.target}", [*args, "."], cwd=root)
    _push(buildah, runner, local_tag, archive, spec.reference)


def ensure_images(
    settings: ClusterSettings, keys: tuple[str, ...] = NODE_IMAGES, *, say: Callable[[str], None] = _say
) -> dict[str, Path]:
    """Build whichever of ``keys`` has no archive for the current sources; return key -> archive."""
    unknown = [k for k in keys if k not in IMAGES]
    if unknown:
        raise BuildError(
            "choose images", f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGES)}"
        )
    digest = context_digest()
    archives = {key: built_archive(settings, key, digest) for key in keys}
    missing = [k for k in keys if not archives[k].is_file()]
    if not missing:
        return archives
    buildah = _need("buildah", "buildah")
    log = settings.image_cache / "build.log"
    runner = _Runner(log)
    say(f"==> building image(s) {', '.join(missing)} (sources {digest}; log: {log})")
    with tempfile.TemporaryDirectory(prefix="outrider-image-") as tmp:
        base = ""
        if any(IMAGES[k].target or k == "kube-scheduler" for k in missing):
            started = time.monotonic()
            base, built = _ensure_base(buildah, runner, Path(tmp))
            if built:
                _record(settings, "base", {"build_s": round(time.monotonic() - started, 1)})
        for key in missing:
            started = time.monotonic()
            spec = IMAGES[key]
            if key == "kube-scheduler":
                _build_kube_scheduler(buildah, runner, settings, base, Path(tmp), archives[key])
            elif spec.target is None:
                _build_pause(buildah, runner, archives[key])
            else:
                _build_target(buildah, runner, spec, base, digest, archives[key])
            elapsed = time.monotonic() - started
            size = image_size(archives[key])
            say(f"    ok  {spec.reference} ({size / 1e6:.0f} MB, {elapsed:.0f}s)")
            _record(settings, key, {"build_s": round(elapsed, 1), "bytes": size, "sources": digest})
    _prune(settings, digest)
    _prune_storage(buildah, digest, say)
    return archives


def build_timings(settings: ClusterSettings) -> dict[str, dict[str, object]]:
    """The last build of each image: seconds, size in bytes, sources hash (``timings.json``)."""
    try:
        data: dict[str, dict[str, object]] = json.loads((settings.image_cache / "timings.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data


def _record(settings: ClusterSettings, key: str, entry: dict[str, object]) -> None:
    data = build_timings(settings)
    data[key] = {**entry, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    settings.image_cache.mkdir(parents=True, exist_ok=True)
    (settings.image_cache / "timings.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


STORAGE_PRUNE_BYTES = 20 * 10**9
"""Above this much buildah storage, dangling layers (the build cache) are pruned after a build."""


def _prune_storage(buildah: str, digest: str, say: Callable[[str], None]) -> None:
    """Untag older builds' images; prune the build cache when buildah's storage grows too big."""
    listed = subprocess.run(
        [buildah, "images", "--format", "{{.Name}}:{{.Tag}}"], capture_output=True, text=True, check=False
    ).stdout.split()
    old = [
        r
        for r in listed
        if r.startswith("localhost/outrider-") and not r.startswith("localhost/outrider-base")
    ]
    old = [r for r in old if not r.endswith(f":{digest}") and r != IMAGES["pause"].reference]
    if old:
        subprocess.run([buildah, "rmi", *old], capture_output=True, check=False)
    info = subprocess.run(
        [buildah, "info", "--format", "{{.store.GraphRoot}}"], capture_output=True, text=True
    )
    root = Path(info.stdout.strip() or "/var/lib/containers/storage")
    du = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=False)
    used = int(du.stdout.split()[0]) if du.returncode == 0 and du.stdout else 0
    if used > STORAGE_PRUNE_BYTES:
        say(f"    ... buildah storage holds {used / 1e9:.0f} GB: pruning its build cache")
        subprocess.run([buildah, "rmi", "--prune"], capture_output=True, check=False)


def _prune(settings: ClusterSettings, digest: str) -> None:
    """Drop archives of older sources (each is hundreds of MB)."""
    for archive in settings.image_cache.glob("outrider-*-*.tar"):
        if archive.name == "outrider-pause-1.tar" or digest in archive.name:
            continue
        archive.unlink(missing_ok=True)


def image_size(archive: Path) -> int:
    """Bytes of an image: its docker-archive holds every layer uncompressed, once."""
    return archive.stat().st_size
