"""The layering of the house (README, Architecture): which package may import which.

Read from the source with Python's own ``ast``: rfd_common imports none of the toolkit's
packages, active_learning only rfd_common, datagen only rfd_common, and nothing imports
LLaVA_Experiments or UniversalFakeDetect from below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rfd_common", "datagen", "active_learning", "UniversalFakeDetect", "LLaVA_Experiments")
ALLOWED = {
    "rfd_common": set(),
    "datagen": {"rfd_common"},
    "active_learning": {"rfd_common"},
    "UniversalFakeDetect": {"rfd_common", "datagen", "active_learning"},
    "LLaVA_Experiments": {"rfd_common", "datagen", "UniversalFakeDetect"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """For each module of ``package``, the toolkit packages it imports (any depth)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names & set(PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below(package: str) -> None:
    wrong = {
        module: sorted(names - ALLOWED[package] - {package})
        for module, names in imported_packages(package).items()
        if names - ALLOWED[package] - {package}
    }
    assert not wrong, wrong
