"""Testing support for plinth and its platform plugins.

``plinth.testing.conformance`` is the platform conformance kit; run it against any
installed platform with ``pytest --pyargs plinth.testing.conformance --plinth-platform=NAME``
(the option comes from :mod:`plinth.testing.pytest_plugin`, loaded automatically by pytest).
"""
