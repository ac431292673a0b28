"""The package version, in its own module so that modules inside the package never import the package face."""

__version__ = "0.1.0"
