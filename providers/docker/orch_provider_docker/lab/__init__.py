"""The local multi-node lab (``orch lab``): Docker hosts as network namespaces on one machine.

The API lives in :mod:`orch_provider_docker.lab.lab` (``up``, ``down``, ``status``).
"""
