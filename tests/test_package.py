"""One import name: the install puts only ``lmrl`` into the import namespace, editable or not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmrl

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import importlib.util as u, lmrl, lmrl.reports, lmrl.finetune\n"
    "from lmrl.tasks import make_task\n"
    "make_task('wordle'); make_task('twenty-questions'); make_task('car-dealer')  # data files load\n"
    "print(lmrl.__file__)\n"
    "print([name for name in ('harness', 'reports', 'finetune', 'tools') if u.find_spec(name)])\n"
)


def probe(cwd: Path, extra_path: str | None = None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path:
        env["PYTHONPATH"] = extra_path
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    where, stray = result.stdout.strip().splitlines()
    return where, stray


def test_the_public_surface_resolves() -> None:
    assert set(lmrl.__all__) == set(lmrl._EXPORTS)
    for name in lmrl.__all__:
        assert getattr(lmrl, name) is not None
    with pytest.raises(AttributeError):
        lmrl.not_a_name  # noqa: B018


def test_editable_install_exposes_only_lmrl(tmp_path: Path) -> None:
    where, stray = probe(tmp_path)  # outside the checkout: only what the install provides
    assert where == str(ROOT / "harness" / "__init__.py") and stray == "[]"


@pytest.mark.slow
def test_a_built_wheel_exposes_only_lmrl(tmp_path: Path) -> None:
    # Build from a copy: an in-place build would leave build/ and egg-info in the checkout.
    source = tmp_path / "source"
    junk = shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__", "bench", "tests")
    shutil.copytree(ROOT, source, ignore=junk)
    wheels = tmp_path / "wheels"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(wheels),
    ]
    subprocess.run([*build, str(source)], check=True, capture_output=True)
    [wheel] = wheels.glob("lmrl-*.whl")
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "lmrl"]
    where, stray = probe(tmp_path, str(target))
    assert where == str(target / "lmrl" / "__init__.py") and stray == "[]"


def test_every_package_folder_is_in_the_build_configuration() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    configured = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {"harness": "lmrl", "finetune": "lmrl.finetune", "reports": "lmrl.reports"}
    found = {
        ".".join([prefix, *init.parent.relative_to(ROOT / folder).parts])
        for folder, prefix in roots.items()
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == configured, f"missing from pyproject: {found - configured}; stale: {configured - found}"
