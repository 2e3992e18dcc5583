"""Each package's public surface is exactly its `__all__` (as httpx checks its own): nothing public by accident,
nothing promised that is not there."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
from types import ModuleType

import pytest

import gatekeeper

PACKAGES = sorted(
    name
    for _, name, is_package in pkgutil.walk_packages(gatekeeper.__path__, prefix="gatekeeper.")
    if is_package
)


def test_every_room_is_checked():
    rooms = {name.split(".")[1] for name in PACKAGES}
    assert {"spec", "stats", "judge", "signals", "sources", "evaluation", "controller", "ops", "web"} <= rooms


def _public(member: str, value: object, package: str) -> bool:
    """A name the package offers: not private, not a module, and defined in the package itself (a helper it
    imports from elsewhere, such as `typing.Any` or another room's class, is not its surface)."""
    if member.startswith("_") or isinstance(value, ModuleType) or value is __future__.annotations:
        return False
    home = getattr(value, "__module__", None)
    return not isinstance(home, str) or home == package or home.startswith(package + ".")


@pytest.mark.parametrize("name", ["gatekeeper", *PACKAGES])
def test_a_package_exports_exactly_its_all(name):
    package = importlib.import_module(name)
    assert hasattr(package, "__all__"), f"{name} has no __all__: say what it exports (maybe nothing: [])"
    exported = list(package.__all__)
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    public = {member for member, value in vars(package).items() if _public(member, value, name)}
    submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert public <= set(exported), (
        f"{name} has public names missing from __all__: {sorted(public - set(exported))}"
    )
    missing = [m for m in exported if m not in public and m not in submodules and m not in vars(package)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
