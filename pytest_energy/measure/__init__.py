"""Measuring: energy meters and their sources, machine facts, the live watchdog, overlap detection."""

METER_CHOICES = ("auto", "nvml", "rapl", "codecarbon", "none")  # here, so reading the settings imports no meter
