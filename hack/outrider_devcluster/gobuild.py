"""Build control-plane binaries from the Go module proxy, showing progress and naming failed steps.

``k8s.io/kubernetes`` and ``go.etcd.io/etcd/server/v3`` cannot be ``go install``-ed: their go.mod
files redirect sibling modules to local folders. Each is built from a small generated wrapper module
that requires the release and replaces every such sibling by its published version. KWOK has no
replaces and is ``go install``-ed directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import BuildError

__all__ = ["GoBuilder", "kubernetes_ldflags", "staging_modules"]

_WRAPPER_MODULE = "outrider.dev/devcluster-build/{name}"
_TOOLS_GO = """//go:build tools

// Package tools pins the commands this wrapper module builds.
package tools

import (
{imports}
)
"""


def staging_modules(gomod_text: str, folder_prefix: str = "./staging/") -> list[str]:
    """Return the modules a go.mod redirects to local folders starting with ``folder_prefix``.

    Kubernetes redirects its staging modules (``k8s.io/api => ./staging/src/k8s.io/api``); etcd's
    server redirects its siblings (``go.etcd.io/etcd/api/v3 => ../api``).
    """
    pattern = r"^[ \t]*(?:replace[ \t]+)?(\S+)(?:[ \t]+\S+)?[ \t]*=>[ \t]*(\S+)[ \t]*$"
    found = {
        mod
        for mod, target in re.findall(pattern, gomod_text, flags=re.MULTILINE)
        if target.startswith(folder_prefix)
    }
    return sorted(found)


def kubernetes_ldflags(version: str) -> str:
    """Return the -ldflags that stamp a Kubernetes version into apiserver, scheduler, kubectl..."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise BuildError("version stamp", f"not a Kubernetes release version: {version!r}")
    major, minor = match.group(1), match.group(2)
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


class GoBuilder:
    """Runs ``go`` steps in a build folder, logging each to a file and timing them."""

    def __init__(self, build_dir: Path, *, progress_every_s: float = 15.0) -> None:
        self.build_dir = build_dir
        self.progress_every_s = progress_every_s
        self.timings_file = build_dir / "timings.json"

    def env(self) -> dict[str, str]:
        """Environment for go: local toolchain only, module mode on, native binaries.

        Settings a developer may have exported for other work would break these builds or make
        them useless here, so they are neutralised: a workspace (``GOWORK``), a ``-mod`` flag in
        ``GOFLAGS`` (the steps pass their own), and cross-compilation targets (``GOOS``/``GOARCH``).
        """
        env = dict(os.environ)
        env.setdefault("GOTOOLCHAIN", "local")
        env["GO111MODULE"] = "on"
        env["GOWORK"] = "off"
        env["GOFLAGS"] = " ".join(f for f in env.get("GOFLAGS", "").split() if not f.startswith("-mod"))
        for var in ("GOOS", "GOARCH"):
            env.pop(var, None)
        return env

    def go(self) -> str:
        """Return the go command, or fail with a clear message when Go is not installed."""
        found = shutil.which("go")
        if not found:
            raise BuildError(
                "find go", "the Go toolchain (go >= 1.26) is not on PATH; install it or provide binaries"
            )
        return found

    # ------------------------------------------------------------------ steps

    def run_step(
        self, step: str, args: Sequence[str], cwd: Path, log: Path, *, env_extra: dict[str, str] | None = None
    ) -> None:
        """Run one command, streaming its output to ``log`` and a progress line to stderr."""
        log.parent.mkdir(parents=True, exist_ok=True)
        env = self.env()
        env.update(env_extra or {})
        started = time.monotonic()
        lines = 0
        last = ""
        done = threading.Event()

        def report() -> None:
            while not done.wait(self.progress_every_s):
                elapsed = time.monotonic() - started
                _say(f"    ... {step}: {elapsed:4.0f}s, {lines} packages/lines so far, last: {last[:90]}")

        ticker = threading.Thread(target=report, daemon=True)
        with log.open("a") as out:
            out.write(f"$ (cd {cwd} && {' '.join(args)})\n")
            out.flush()
            try:
                proc = subprocess.Popen(
                    list(args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            except OSError as exc:
                raise BuildError(step, f"could not run {args[0]}: {exc}", log) from exc
            ticker.start()
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                lines += 1
                last = line.strip()
            rc = proc.wait()
            done.set()
        elapsed = time.monotonic() - started
        self._record(step, elapsed)
        if rc != 0:
            raise BuildError(step, f"exit status {rc} after {elapsed:.0f}s; last output: {last}", log)
        _say(f"    ok  {step} ({elapsed:.0f}s)")

    def download_json(self, module: str, log: Path) -> dict[str, str]:
        """``go mod download -json module@version`` and return its JSON (Dir, GoMod, ...)."""
        step = f"download {module}"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [self.go(), "mod", "download", "-json", module],
            cwd=self.build_dir,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        with log.open("a") as out:
            out.write(f"$ go mod download -json {module}\n{proc.stdout}{proc.stderr}")
        try:
            info: dict[str, str] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            info = {}
        if proc.returncode != 0 or "Error" in info or "GoMod" not in info:
            reason = info.get("Error") or proc.stderr.strip() or f"exit status {proc.returncode}"
            raise BuildError(step, reason, log)
        return info

    def write_wrapper(
        self, name: str, requires: dict[str, str], replaces: dict[str, str], packages: list[str]
    ) -> Path:
        """Generate a wrapper module that builds ``packages`` of the required releases."""
        folder = self.build_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"module {_WRAPPER_MODULE.format(name=name)}", "", "go 1.26.0", ""]
        lines += [f"require {mod} {ver}" for mod, ver in sorted(requires.items())]
        lines.append("")
        lines += [f"replace {mod} => {mod} {ver}" for mod, ver in sorted(replaces.items())]
        (folder / "go.mod").write_text("\n".join(lines) + "\n")
        imports = "\n".join(f'\t_ "{pkg}"' for pkg in packages)
        (folder / "tools.go").write_text(_TOOLS_GO.format(imports=imports))
        return folder

    # ------------------------------------------------------------------ timing

    def _record(self, step: str, seconds: float) -> None:
        try:
            data = json.loads(self.timings_file.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        data[step] = {"seconds": round(seconds, 1), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.timings_file.parent.mkdir(parents=True, exist_ok=True)
        self.timings_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
