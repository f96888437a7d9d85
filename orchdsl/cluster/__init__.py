"""The cluster layer: derived desired state, computed purely from the whole configuration.

The engine runs :data:`DERIVATIONS` in plan without knowing what they derive (see :mod:`.derive`).
"""

from .derive import Derivation, Derived, DerivedInstance, DerivedObject, Inputs, Summary
from .placement import PLACEMENT

# In the order the planner may need them; each runs once per plan.
DERIVATIONS: tuple[Derivation, ...] = (PLACEMENT,)

__all__ = ["DERIVATIONS", "Derivation", "Derived", "DerivedInstance", "DerivedObject", "Inputs", "Summary"]
