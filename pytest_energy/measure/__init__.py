"""Measuring: energy meters and their sources, machine facts, the live watchdog, overlap detection."""

METER_CHOICES = ("auto", "nvml", "rapl", "codecarbon", "none")  # here, so reading the settings imports no meter
RANK_PORT_ENV = "PYTEST_ENERGY_RANK_PORT"  # the ranks' exchange port where --energy-rank-port is not given
