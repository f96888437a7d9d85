"""orch's Docker provider: Docker hosts reached over SSH (paramiko), and the local lab."""
