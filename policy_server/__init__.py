"""policy-server: policy as code for Kargo promotions."""

# regopy is loaded before anything else on purpose. When aiohttp's frozenlist extension (via opa-python-client)
# is loaded first, regopy's time-zone code (time.weekday, time.clock/date with a zone) resolves symbols from it
# and the process dies with "free(): invalid pointer": every Rego worker, on any policy that asks what day it is.
# tests/integration/test_engine.py keeps a probe of it.
import regopy  # noqa: F401  (load order: see above)

__version__ = "0.1.0"

__all__ = ["__version__"]
