"""The container definition (Dockerfile + requirements.lock), tested as far as this machine allows: no container
engine runs here, so the Dockerfile is parsed with BuildKit's own parser (the `dockerfile` package; hadolint
does not install from PyPI) and checked against the rules the chart relies on, and its install steps are
replayed in a clean virtualenv from the built wheel: pinned, hashed dependencies, the console script as
entrypoint, and nothing written under the installation when it runs (the chart mounts the root read-only).
Not tested here: the base image itself, `docker build`, and running the image under a container runtime."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def commands() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def final_stage() -> list[dockerfile.Command]:
    cmds = commands()
    last_from = max(i for i, c in enumerate(cmds) if c.cmd == "FROM")
    return cmds[last_from:]


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from requirements.lock (pip's hash-checking format)."""
    text = (ROOT / "requirements.lock").read_text()
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s\\;]+)", block)
        if m:
            pins[canonicalize_name(m.group(1))] = (
                m.group(2),
                re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
            )
    return pins


def test_the_dockerfile_parses_with_buildkits_parser_and_keeps_the_charts_assumptions() -> None:
    cmds = commands()
    args = {c.value[0].split("=", 1)[0]: c.value[0].split("=", 1)[1] for c in cmds if c.cmd == "ARG"}
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", base), base  # a slim Python base, pinned to a minor
    froms = [c.value[0] for c in cmds if c.cmd == "FROM"]
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    final = final_stage()
    user = [c.value[0] for c in final if c.cmd == "USER"]
    assert user and all(int(part) != 0 for part in user[-1].split(":")), user  # numeric, non-root
    entry = next(c for c in final if c.cmd == "ENTRYPOINT")
    assert entry.json and entry.value == ("gatekeeper",)
    assert PYPROJECT["project"]["scripts"]["gatekeeper"]  # the console script the entrypoint names
    assert not [c for c in cmds if c.cmd == "ADD"]  # COPY only: no remote fetches at build time
    runs = " ".join(" ".join(c.value) for c in cmds if c.cmd == "RUN")
    assert "--require-hashes" in runs and "-r /tmp/requirements.lock" in runs and "--no-deps" in runs
    wheel = f"gatekeeper-{VERSION}-py3-none-any.whl"
    assert wheel in runs, f"the Dockerfile must install the wheel of version {VERSION}"
    env = dict(
        pair for c in final if c.cmd == "ENV" for pair in zip(c.value[::2], c.value[1::2], strict=True)
    )
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/tmp"  # nothing written beside the code
    chart = (ROOT / "charts" / "gatekeeper" / "Chart.yaml").read_text()
    assert f'appVersion: "{VERSION}"' in chart  # the tag the chart deploys is the one the README builds


def test_the_lock_pins_every_dependency_with_hashes_within_pyprojects_ranges() -> None:
    pins = locked()
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"requirements.lock lacks {req.name}: regenerate it (see its header)"
        version, hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside {req.specifier}"
        )
        assert hashes, f"{name} has no hash"
    for test_only in ("pytest", "hypothesis", "ruff", "playwright"):
        assert test_only not in pins, f"{test_only} is a test dependency, not an image dependency"


@pytest.mark.slow
def test_the_images_install_steps_work_in_a_clean_virtualenv_from_the_built_wheel(tmp_path: Path) -> None:
    """The Dockerfile's RUN steps, in order, outside a container: wheel, pinned deps, the wheel without deps,
    bytecode; then the entrypoint answers --help for both roles and leaves the installation untouched."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, timeout=900, env=env, **kw
        )  # type: ignore[call-overload]
        assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT)
    wheel = dist / f"gatekeeper-{VERSION}-py3-none-any.whl"
    assert wheel.is_file(), sorted(dist.iterdir())
    venv = tmp_path / "opt-gatekeeper"
    run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    run(pip, "install", "-q", "--require-hashes", "--only-binary=:all:", "-r", ROOT / "requirements.lock")
    run(pip, "install", "-q", "--no-deps", wheel)
    run(venv / "bin" / "python", "-m", "compileall", "-q", venv / "lib")
    run(pip, "check")
    before = {p: p.stat().st_mtime_ns for p in venv.rglob("*")}
    env.update(
        PYTHONDONTWRITEBYTECODE="1", HOME=str(tmp_path / "home"), PATH=f"{venv / 'bin'}:{os.environ['PATH']}"
    )
    gk = venv / "bin" / "gatekeeper"
    assert f"gatekeeper {VERSION}" in run(gk, "--version").stdout
    for role in (("controller", "run"), ("intake",), ("serve",)):
        assert "--help" in run(gk, *role, "--help").stdout
    after = {p: p.stat().st_mtime_ns for p in venv.rglob("*")}
    assert after == before, sorted(set(after) ^ set(before))[:5]  # a read-only root filesystem would hold
    installed = run(pip, "list", "--format=freeze").stdout
    pins = locked()
    for line in installed.splitlines():
        name, _, version = line.partition("==")
        if canonicalize_name(name) in ("gatekeeper", "pip", "setuptools"):
            continue
        assert pins.get(canonicalize_name(name), ("?",))[0] == version, f"{line} is not the locked version"
