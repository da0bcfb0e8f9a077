"""crmlib: load, resolve and analyse the customer-information center's data (see README.md)."""
from ._startup import defer_slow_imports

defer_slow_imports()
