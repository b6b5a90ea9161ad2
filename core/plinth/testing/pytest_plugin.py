"""pytest plugin of the conformance kit: the ``--plinth-platform`` option and its fixture.

pytest loads it in every run where plinth-core is installed (entry point group ``pytest11``),
so loading it is cheap: no torch, no platform, until a test asks for ``plinth_platform``.

``--plinth-platform=NAME[,NAME...]`` (or ``$PLINTH_CONFORMANCE_PLATFORMS``) names the platforms
under test: device names as ``plinth platforms`` lists them, or ``package.module:ATTR`` naming a
``PlatformDescriptor`` that need not be installed. Every test that takes the ``plinth_platform``
fixture runs once per platform; without the option those tests skip, saying how to run them.
If pytest plugin autoloading is disabled, add ``-p plinth.testing.pytest_plugin``.
"""

from __future__ import annotations

import functools
import os

import pytest

OPTION = "--plinth-platform"
ENV = "PLINTH_CONFORMANCE_PLATFORMS"
NO_PLATFORM = (
    f"no platform under test: run `pytest --pyargs plinth.testing.conformance {OPTION}=NAME` "
    f"(NAME from `plinth platforms`, or module:DESCRIPTOR), or set {ENV}=NAME"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plinth", "plinth platform conformance kit")
    group.addoption(
        OPTION, dest="plinth_platform", default=None, metavar="NAME[,NAME...]",
        help=f"platforms to run the conformance kit against: device names or module:DESCRIPTOR "
             f"(default: ${ENV})",
    )


def platform_specs(config: pytest.Config) -> list[str]:
    """The platforms under test, from the option or the environment, in order."""
    raw = config.getoption("plinth_platform", default=None) or os.environ.get(ENV, "")
    return [spec.strip() for spec in raw.split(",") if spec.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "plinth_platform" not in metafunc.fixturenames:
        return
    specs = platform_specs(metafunc.config)
    metafunc.parametrize(
        "plinth_platform", specs or [None], ids=specs or ["no-platform"], indirect=True, scope="session"
    )


@functools.cache
def load_platform(spec: str):
    """Select and instantiate the platform ``spec`` names, once per process."""
    from plinth.platform import select_platform

    return select_platform(spec)


@pytest.fixture(scope="session")
def plinth_platform(request: pytest.FixtureRequest):
    """The ``plinth.platform.Platform`` under test."""
    spec = getattr(request, "param", None)
    if spec is None:
        pytest.skip(NO_PLATFORM)
    try:
        return load_platform(spec)
    except Exception as exc:  # selection errors list every platform and why it is unusable
        pytest.fail(f"cannot load platform {spec!r} for the conformance kit: {type(exc).__name__}: {exc}",
                    pytrace=False)
