"""Who may use which route: one table, read by the access middleware and by the tests.

Every route the application registers has a row here; a route without one is refused (and a
test fails). The README's HTTP table shows the same roles and a test holds the two together.

Roles share one namespace: ``pbx`` and ``portal`` are API-token roles, ``agent`` and ``admin``
are UI-user roles, and ``supervisor`` is both (a supervisor's token and a supervisor's login may
do the same). ``admin`` may do whatever a supervisor may, and nothing that only the switch does
(the IVR routes).
"""

from __future__ import annotations

from typing import Final

from callcenter.services.auth import ROLES

#: no credentials needed
PUBLIC: Final = "public"
#: any valid token or session, whatever its role
SIGNED_IN: Final = "signed-in"

Rule = str | frozenset[str]


def roles(*names: str) -> frozenset[str]:
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}")
    return frozenset(names)


_CERTIFICATES = roles("pbx", "supervisor", "admin")
_CALL_READERS = roles("agent", "supervisor", "admin")
_CALL_ACTORS = roles("agent", "supervisor", "admin")
_SUPERVISORS = roles("supervisor", "admin")
_USERS = roles("agent", "supervisor", "admin")
#: the caller's own desk: a UI user's (a supervisor's token has no desk of its own but may look)
_DESK = roles("agent", "supervisor", "admin")

#: (method, canonical path) -> the roles that may use it, PUBLIC or SIGNED_IN.
#: HEAD is checked as GET.
ACCESS: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/healthz/live"): PUBLIC,
    ("GET", "/healthz/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/api/v1/session"): PUBLIC,
    ("GET", "/api/v1/session"): SIGNED_IN,
    ("DELETE", "/api/v1/session"): PUBLIC,
    ("GET", "/api/v1/certificates/{number}"): _CERTIFICATES,
    ("GET", "/api/v1/certificates"): _CERTIFICATES,
    ("GET", "/api/v1/policy"): _SUPERVISORS,
    ("POST", "/api/v1/events"): roles("pbx", "supervisor", "admin"),
    ("GET", "/api/v1/ivr/working-time"): roles("pbx"),
    ("POST", "/api/v1/ivr/check"): roles("pbx"),
    ("POST", "/api/v1/ivr/voicemail"): roles("pbx"),
    ("GET", "/api/v1/calls"): _CALL_READERS,
    ("GET", "/api/v1/calls/{call_id}"): _CALL_READERS,
    ("PATCH", "/api/v1/calls/{call_id}"): _CALL_ACTORS,
    ("POST", "/api/v1/calls/{call_id}/extend"): _CALL_ACTORS,
    ("POST", "/api/v1/calls/{call_id}/escalate"): _CALL_ACTORS,
    ("POST", "/api/v1/calls/{call_id}/outcome"): _CALL_ACTORS,
    ("POST", "/api/v1/complaints"): _CALL_ACTORS,
    ("GET", "/api/v1/reviews"): _SUPERVISORS,
    ("POST", "/api/v1/tickets"): roles("portal", "supervisor", "admin"),
    ("GET", "/api/v1/tickets"): roles("agent", "supervisor", "admin", "portal"),
    ("GET", "/api/v1/tickets/{ticket_id}"): roles("agent", "supervisor", "admin", "portal"),
    ("POST", "/api/v1/tickets/{ticket_id}/answer"): _CALL_ACTORS,
    ("GET", "/api/v1/tickets/{ticket_id}/recording"): _CALL_READERS,
    ("GET", "/api/v1/stream"): _CALL_READERS,
    # pages (HTML): an anonymous visitor is sent to /login, a wrong role gets a 403 page
    ("GET", "/static"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("POST", "/lang"): PUBLIC,
    ("GET", "/"): _USERS,
    ("GET", "/agent"): _CALL_ACTORS,
    ("GET", "/agent/list"): _CALL_ACTORS,
    ("GET", "/admin/users"): roles("admin"),
    # the supervisor's screens (issue 11, board)
    ("GET", "/supervisor"): _SUPERVISORS,
    ("GET", "/supervisor/board"): _SUPERVISORS,
    ("GET", "/supervisor/board/live"): _SUPERVISORS,
    ("GET", "/supervisor/wallboard"): _SUPERVISORS,
    ("GET", "/supervisor/wallboard/live"): _SUPERVISORS,
    ("GET", "/supervisor/history"): _SUPERVISORS,
    ("GET", "/supervisor/calls/{call_id}"): _SUPERVISORS,
    ("GET", "/supervisor/certificates/{number}"): _SUPERVISORS,
    # the supervisor's reports and CSV exports (issue 11, reports)
    ("GET", "/supervisor/reports"): _SUPERVISORS,
    ("GET", "/supervisor/reports.csv"): _SUPERVISORS,
    ("GET", "/supervisor/history.csv"): _SUPERVISORS,
    ("GET", "/supervisor/reviews"): _SUPERVISORS,
    ("POST", "/supervisor/reviews/{review_id}"): _SUPERVISORS,
    # issue 11 (admin helper): the portal form, tickets, the policy, the admin pages
    ("GET", "/portal"): PUBLIC,
    ("POST", "/portal"): PUBLIC,
    ("GET", "/tickets"): _CALL_READERS,
    ("GET", "/tickets/{ticket_id}"): _CALL_READERS,
    ("POST", "/tickets/{ticket_id}/answer"): _CALL_ACTORS,
    ("GET", "/policy"): _SUPERVISORS,
    ("POST", "/policy"): roles("admin"),
    ("POST", "/admin/users"): roles("admin"),
    ("POST", "/admin/users/{login}/disable"): roles("admin"),
    ("POST", "/admin/users/{login}/enable"): roles("admin"),
    ("POST", "/admin/users/{login}/password"): roles("admin"),
    ("GET", "/admin/tokens"): roles("admin"),
    ("POST", "/admin/tokens"): roles("admin"),
    ("POST", "/admin/tokens/revoke"): roles("admin"),
    ("GET", "/admin/certificates"): roles("admin"),
    ("POST", "/admin/certificates"): roles("admin"),
    ("GET", "/admin/certificates/jobs/{job_id}"): roles("admin"),
    ("GET", "/admin/certificates/jobs/{job_id}/progress"): roles("admin"),
    ("POST", "/api/v1/calls/{call_id}/certificate"): _CALL_ACTORS,
    ("GET", "/api/v1/users"): roles("admin"),
    ("PUT", "/api/v1/users/{login}/interfaces"): roles("admin"),
    ("GET", "/api/v1/agent/desk"): _DESK,
    ("PUT", "/api/v1/agent/state"): _DESK,
    ("POST", "/api/v1/agent/wrapup/done"): _DESK,
    ("GET", "/api/v1/agent/calls"): _DESK,
    ("GET", "/api/v1/agent/tickets"): _DESK,
    # no token: authenticated by its HMAC signature (web/helpdesk_api.py)
    ("POST", "/api/v1/helpdesk/answers"): PUBLIC,
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route by its method and canonical path; None if it has no row."""
    return ACCESS.get(("GET" if method == "HEAD" else method, path))


def allows(rule: Rule, role: str) -> bool:
    return rule in (PUBLIC, SIGNED_IN) or role in rule
