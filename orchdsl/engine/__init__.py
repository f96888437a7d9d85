"""The engine: refresh, plan and apply, provider-independent."""
