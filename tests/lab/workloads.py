"""Configurations the lab tests and the benchmarks share: a client pod with the service "web" over port 8080 of
the pods labelled app = web, and the loop the client runs; the fleet's workload."""

from __future__ import annotations

CLIENT_AND_SERVICE = """
pod "client" {
  container "sh" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sleep", "1000000"]
  }
}

service "web" {
  selector    = { app = "web" }
  port        = 80
  target_port = 8080
}
"""

# what to log of an answer $r (empty when the request failed)
LOG_ANSWER = 'echo "${r:-FAIL}"'


def request_loop(wait: int, log: str = LOG_ANSWER) -> str:
    """Shell for the client: one request after the other through the service name (``nc -w WAIT``), each answer
    (or its failure) one line of /tmp/log, until /tmp/stop exists."""
    return ("rm -f /tmp/stop /tmp/log; while [ ! -f /tmp/stop ]; do "
            f"r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {wait} web 80 | tail -n 1); "
            f"{log}; done >> /tmp/log 2>&1")


# the fleet (tests/lab/test_fleet_lab.py, benchmarks/fleet_bench.py): %(pods)d busybox httpd replicas, each
# requesting little, spread evenly, with a service so that every node also has a service program
FLEET = """
pod "web" {
  replicas = %(pods)d
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
    resources {
      cpu    = 0.01
      memory = "8Mi"
    }
  }
}

service "web" {
  selector    = { app = "web" }
  port        = 80
  target_port = 8080
}
"""
