"""Shared fixtures live in tests/fixtures/*; each module there is a pytest plugin registered here."""

pytest_plugins = [
    "tests.fixtures.prometheus",
    "tests.fixtures.kube",
    "tests.fixtures.jaeger",
]
