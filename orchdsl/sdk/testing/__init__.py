"""The SDK's testing kit: an in-process provider (:mod:`.memory`) and the conformance suite
(:mod:`.conformance`) any provider runs in its own tests."""

from .conformance import Sample, check_provider
from .memory import MemoryProvider

__all__ = ["MemoryProvider", "Sample", "check_provider"]
