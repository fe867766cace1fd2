"""policy-server: policy as code for Kargo promotions."""

__version__ = "0.1.0"

__all__ = ["__version__"]
