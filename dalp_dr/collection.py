"""The Ansible collection ``dalp.dr`` and its execution environment, built from this repository.

Its sources are ``playbooks/collection/`` (``galaxy.yml``, the drill module, the job
playbook ``dalp.dr.run``) and the shared roles of ``playbooks/roles``, which become the
collection's roles. ``ansible-galaxy collection build`` skips symbolic links that leave the
collection's directory, so the two are staged, links resolved, in a temporary
``ansible_collections/dalp/dr`` before the build; nothing is written into the repository.

The execution environment (``playbooks/collection/execution-environment.yml``, ansible-builder
3) installs dalp-dr's wheel and the collection: ``build_ee_context`` writes both beside a copy
of the definition and runs ``ansible-builder create``, which writes the image's build context
(a Containerfile and ``_build/``) for ``podman build``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from dalp_dr.errors import HintKey, PackagingError

SOURCE = Path("playbooks") / "collection"
ROLES = Path("playbooks") / "roles"
NOT_PACKAGED = ("execution-environment.yml", "requirements.txt", "bindep.txt")
"""the execution environment's definition lives beside the collection's sources"""
LAB_ROLES = "dalp_lab"
"""the local labs' roles (dalp_lab, dalp_lab_platform, ...): not for a real estate"""
BUILD_TIMEOUT = 300.0
PACKAGES = {"ansible-galaxy": "ansible-core", "ansible-builder": "ansible-builder>=3.1,<4"}
"""the Python package that installs each tool"""


def galaxy(project: Path) -> dict[str, object]:
    """The collection's ``galaxy.yml``."""
    path = project / SOURCE / "galaxy.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PackagingError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PackagingError(f"{path}: not a mapping")
    return data


def artifact_name(project: Path) -> str:
    """``dalp-dr-<version>.tar.gz``, the name ansible-galaxy gives the build."""
    data = galaxy(project)
    return f"{data['namespace']}-{data['name']}-{data['version']}.tar.gz"


def stage(project: Path, into: Path) -> Path:
    """The collection's tree under ``into/ansible_collections/<namespace>/<name>``: the
    sources, and the shared roles as ``roles/`` (every link resolved to its file)."""
    data = galaxy(project)
    root = into / "ansible_collections" / str(data["namespace"]) / str(data["name"])
    source = project / SOURCE
    shutil.copytree(source, root, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", *NOT_PACKAGED))
    roles = root / "roles"
    roles.mkdir()
    for role in sorted((project / ROLES).iterdir()):
        if role.is_dir() and not role.name.startswith(LAB_ROLES):
            shutil.copytree(role, roles / role.name, symlinks=False,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise PackagingError(f"{name} not found", hint_key=HintKey.INSTALL_TOOL,
                             hint_params={"package": PACKAGES[name]})
    return found


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackagingError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        raise PackagingError(f"{what}: " + (done.stderr.strip() or done.stdout.strip()
                                            or f"exit {done.returncode}"))


def build(project: Path, out_dir: Path) -> Path:
    """Build the collection's artifact into ``out_dir`` (replacing one of the same version)
    and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    galaxy_bin = _tool("ansible-galaxy")
    with tempfile.TemporaryDirectory(prefix="dalp-dr-collection-") as tmp:
        root = stage(project, Path(tmp))
        _run([galaxy_bin, "collection", "build", str(root), "--output-path", str(out_dir),
              "--force"], "ansible-galaxy collection build")
    artifact = out_dir / artifact_name(project)
    if not artifact.is_file():
        raise PackagingError(f"ansible-galaxy collection build wrote no {artifact.name}")
    return artifact


def source_tree() -> Path:
    """The checkout this package runs from (its ``pyproject.toml``): the wheel's source."""
    tree = Path(__file__).resolve().parent.parent
    if not (tree / "pyproject.toml").is_file():
        raise PackagingError(f"no pyproject.toml in {tree}: the wheel is built from a "
                             "checkout of dalp-dr, not from an installed package")
    return tree


def build_wheel(out_dir: Path) -> Path:
    """dalp-dr's wheel, built from a copy of its sources (setuptools writes ``build/``
    beside the sources it builds: not into the checkout)."""
    tree = source_tree()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dalp-dr-wheel-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(tree / name, copy / name)
        shutil.copytree(tree / "dalp_dr", copy / "dalp_dr",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        before = set(out_dir.glob("dalp_dr-*.whl"))
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
              str(out_dir), str(copy)], "pip wheel (dalp-dr)")
    built = sorted(set(out_dir.glob("dalp_dr-*.whl")) - before) or \
        sorted(out_dir.glob("dalp_dr-*.whl"))
    if not built:
        raise PackagingError("pip wheel wrote no dalp_dr-*.whl")
    return built[-1]


def build_ee_context(project: Path, out_dir: Path) -> Path:
    """The execution environment's build context in ``out_dir/context`` (returned): the
    collection and the wheel beside a copy of the definition, then ``ansible-builder
    create``. Building the image needs a container engine and the base image: not here."""
    builder = _tool("ansible-builder")
    out_dir.mkdir(parents=True, exist_ok=True)
    # the definition copies dalp_dr-*.whl and dalp-dr-*.tar.gz by pattern: an earlier
    # version's left here would make the image install two
    for stale in [*out_dir.glob("dalp_dr-*.whl"), *out_dir.glob("dalp-dr-*.tar.gz")]:
        stale.unlink()
    build(project, out_dir)
    build_wheel(out_dir)
    for name in NOT_PACKAGED:
        shutil.copy2(project / SOURCE / name, out_dir / name)
    context = out_dir / "context"
    if context.is_symlink() or (context.exists() and not context.is_dir()):
        raise PackagingError(f"{context} is not a directory this build made: move it away "
                             "or choose another --out")
    if context.exists():
        shutil.rmtree(context)
    _run([builder, "create", "--file", "execution-environment.yml", "--context",
          str(context)], "ansible-builder create", cwd=out_dir)
    return context
