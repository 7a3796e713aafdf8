"""Model tiers: the names a request's `modelType`, the manifest, [workers.tiers] and the
supervisor/worker frames all use. `auto` is not a tier: it asks routing to pick one."""

from __future__ import annotations

TIERS = ("basic", "medium", "premium")
AUTO = "auto"
MODEL_TYPES = (*TIERS, AUTO)
