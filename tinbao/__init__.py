"""tinbao: a messenger tip line and legal-outreach bot for Vietnamese commune police."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tinbao")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
