"""Shared core of the recommender: settings, artifact format, scoring math and errors.

Imports nothing heavy at package import; import the submodules you need.
"""

__version__ = "0.1.0"
