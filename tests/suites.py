"""Test files shared by the plugin-level tests: a CPU-burning helper and suites built on it."""

BURN = """
import time

import pytest


def burn(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
"""

# E_norm of a capped test (reference-energy "0.001 J") is about 0.001 J x (0.05 s / 0.3 s): 50 times under
# one cap, 20 times over the other, while its raw energy (about a joule) is far over both.
NORMALISED_CAP_SUITE = BURN + """

@pytest.mark.energy_baseline
def test_reference_workload():
    burn(0.3)


@pytest.mark.energy(cap="0.01 J")
def test_under_normalised_cap():
    burn(0.05)


@pytest.mark.energy(cap="0.00001 J")
def test_over_normalised_cap():
    burn(0.05)
"""

# The only fake GPU (``fakes.fake_pynvml``, one board installed) is lost in the first test: what later tests
# spend is unknown.
LOSES_THE_GPU = """
import sys
import time

import pytest


@pytest.mark.energy
def test_loses_the_gpu():
    time.sleep(0.1)
    sys.modules["pynvml"]._driver.fail(0)
"""
