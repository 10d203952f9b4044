"""Sluice: the shared layer behind every Sluice Lambda function."""

__version__ = "0.1.0"
