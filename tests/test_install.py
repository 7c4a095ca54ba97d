"""`pip install vidprompt` resolves on every platform the README promises: the dependencies, with their
environment markers evaluated for each platform, resolve to wheels on the package index (a dry run of
pip for that platform: nothing is downloaded or installed beyond metadata)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
from packaging.markers import default_environment  # noqa: E402
from packaging.requirements import Requirement  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# name -> (marker environment, pip platform tag)
PLATFORMS = {
    "macOS arm64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64",
                     "os_name": "posix"}, "macosx_14_0_arm64"),
    "macOS x86_64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64",
                      "os_name": "posix"}, "macosx_13_0_x86_64"),
    "Linux aarch64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64",
                       "os_name": "posix"}, "manylinux2014_aarch64"),
    "Linux x86_64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                      "os_name": "posix"}, "manylinux2014_x86_64"),
    "Windows x86_64": ({"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64",
                        "os_name": "nt"}, "win_amd64"),
}
NETWORK_TROUBLE = ("Could not fetch URL", "NewConnectionError", "Temporary failure in name resolution",
                   "Network is unreachable", "ConnectTimeout", "ReadTimeout")


def requirements_for(platform: str) -> list[str]:
    """The project's dependencies that apply on ``platform``, markers evaluated there."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    env = {**default_environment(), **PLATFORMS[platform][0]}
    out = []
    for dep in deps:
        req = Requirement(dep)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_every_platform_gets_a_decoder_and_decord_only_where_it_has_wheels(platform):
    names = {Requirement(r).name for r in requirements_for(platform)}
    assert "av" in names  # PyAV: FFmpeg in wheels for every platform
    assert ("decord" in names) == (platform in ("Linux x86_64", "Windows x86_64"))
    assert "torchcodec" not in names  # optional: the gpu extra


def _dry_run(platform: str, tmp: Path) -> tuple[subprocess.CompletedProcess, Path]:
    report = tmp / f"{PLATFORMS[platform][1]}.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--only-binary=:all:", "--platform", PLATFORMS[platform][1], "--python-version",
           f"{sys.version_info.major}.{sys.version_info.minor}", "--implementation", "cp",
           "--target", str(tmp / "never-written"), "--report", str(report), *requirements_for(platform)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600), report


@pytest.mark.slow
@pytest.mark.network
def test_dependencies_resolve_to_wheels_on_macos_and_linux_aarch64(tmp_path):
    """decord has no wheels for macOS or Linux aarch64: there `pip install` must still resolve, with PyAV.
    (Linux x86_64 is the platform this suite installs on; Windows differs from it only by wheel tags.)"""
    platforms = ["macOS arm64", "Linux aarch64"]
    with ThreadPoolExecutor(len(platforms)) as pool:
        runs = dict(zip(platforms, pool.map(lambda p: _dry_run(p, tmp_path), platforms)))
    for platform, (run, report) in runs.items():
        if run.returncode != 0 and any(t in run.stderr for t in NETWORK_TROUBLE):
            pytest.skip(f"the package index cannot be reached from here: {run.stderr.strip().splitlines()[-1]}")
        assert run.returncode == 0, f"{platform}: {run.stderr.strip()[-2000:]}"
        resolved = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
                    for item in json.loads(report.read_text())["install"]}
        assert {"torch", "av", "open-clip-torch", "numpy"} <= resolved, (platform, sorted(resolved))
        assert "decord" not in resolved
