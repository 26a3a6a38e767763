"""For scrapyd-deploy, which builds the project's egg with ``python setup.py bdist_egg``: the
package is configured in pyproject.toml (pip install . does not need this file)."""

from setuptools import setup

setup()
