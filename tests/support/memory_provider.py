"""The SDK's in-process test provider, under the name the tests have always used."""

from orchdsl.sdk.testing.memory import MemoryProvider, edit_world, world_objects

__all__ = ["MemoryProvider", "edit_world", "world_objects"]
