"""The HTTP base every service shares: the FastAPI app factory, RFC 9457 problem details, health
and readiness probes and the Prometheus endpoint."""

from credit_common.http.app import create_http_app, mount_asyncapi
from credit_common.http.health import HealthChecks, health_router
from credit_common.http.problems import PROBLEM_JSON, Problem, install_problem_handlers

__all__ = [
    "PROBLEM_JSON",
    "HealthChecks",
    "Problem",
    "create_http_app",
    "health_router",
    "install_problem_handlers",
    "mount_asyncapi",
]
