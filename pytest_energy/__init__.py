"""pytest-energy: measure, normalise and cap the energy of machine-learning tests."""

__version__ = "0.1.0"
