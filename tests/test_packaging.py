"""Packaging: environment.yml lists what pyproject.toml declares, the README's quick start is what CI
runs, and the peer library (torchattacks) is pinned once."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    pp = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {r.replace(" ", "") for r in pp["dependencies"] + pp["optional-dependencies"]["dev"]}
    pip_section = (REPO / "environment.yml").read_text().split("- pip:", 1)[1]
    listed = {line.strip()[2:].replace(" ", "") for line in pip_section.splitlines() if line.strip().startswith("- ")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    assert "torch==2.14.1" in wanted and "torchvision==0.29.1" in wanted


def test_readme_quick_start_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, flags=re.M)
    assert commands == ["lab", "figures", "audit", "test"], commands  # the explainer first
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_peer_library_is_declared_once_pinned():
    """torchattacks: the `attacks` extra, the Makefile's --no-deps install and the error message name one version."""
    from jeat_core.measure.robustness import INSTALL_PEER, PEER

    pp = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert pp["optional-dependencies"]["attacks"] == [PEER]
    assert f"--no-deps {PEER}" in (REPO / "Makefile").read_text()
    assert INSTALL_PEER == f"pip install --no-deps {PEER}"
