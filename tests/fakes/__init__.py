"""Faithful stand-ins for hardware this CI has not got: NVML (``fake_pynvml``) and RAPL powercap (``powercap``)."""
