"""Words the pages show for the service's codes (statuses, roles, categories, reasons).

Every key is written out here with ``N_`` so the extractor sees it and the i18n test demands
its translation in both catalogs, though templates and the page's script build the key from a
code at run time (``status_`` + ``VALID``).
"""

from __future__ import annotations

from callcenter.web.i18n import N_

#: the certificate status vocabulary the pop shows (lookup answers plus the IVR's own words)
CERT_STATUSES = (
    "VALID",
    "EXPIRED",
    "NOT_YET_VALID",
    "NOT_COVERED",
    "UNKNOWN",
    "UNVERIFIED",
    "LOCKED",
)
STATUS_KEYS = (
    N_("status_VALID"),
    N_("status_EXPIRED"),
    N_("status_NOT_YET_VALID"),
    N_("status_NOT_COVERED"),
    N_("status_UNKNOWN"),
    N_("status_UNVERIFIED"),
    N_("status_LOCKED"),
    N_("status_NO_INPUT"),
)
ROLE_KEYS = (
    N_("role_agent"),
    N_("role_supervisor"),
    N_("role_admin"),
    N_("role_pbx"),
    N_("role_portal"),
)
LANG_KEYS = (N_("lang_ru"), N_("lang_en"))
ERROR_KEYS = (
    N_("error_401"),
    N_("error_403"),
    N_("error_404"),
    N_("error_422"),
    N_("error_429"),
    N_("error_other"),
)
WINDOW_KEYS = (
    N_("window_open"),
    N_("window_extended"),
    N_("window_met"),
    N_("window_overrun"),
    N_("window_escalated"),
    N_("window_warning"),
    N_("window_none"),
    N_("window_abandoned"),
)
OUTCOME_KEYS = (
    N_("outcome_resolved"),
    N_("outcome_escalated"),
    N_("outcome_refused"),
    N_("outcome_abusive"),
)
TICKET_KEYS = (
    N_("ticket_open"),
    N_("ticket_overdue"),
    N_("ticket_answered"),
    N_("ticket_withdrawn"),
)
STATE_KEYS = (N_("state_available"), N_("state_paused"), N_("state_in_call"), N_("state_wrap_up"))
CATEGORY_KEYS = (
    N_("category_install"),
    N_("category_admin"),
    N_("category_kit_restore"),
    N_("category_recovery"),
    N_("category_build_update"),
    N_("category_other"),
)
REFUSAL_KEYS = (
    N_("refusal_no_certificate"),
    N_("refusal_identity_mismatch"),
    N_("refusal_not_covered"),
    N_("refusal_locked"),
)
#: API error codes the agent's page explains in words (others show a generic line and the code)
API_ERROR_KEYS = (
    N_("apierr_not_your_call"),
    N_("apierr_ami_unavailable"),
    N_("apierr_database_unavailable"),
    N_("apierr_throttled"),
    N_("apierr_validation"),
    N_("apierr_conflict"),
    N_("apierr_not_found"),
    N_("apierr_unauthorized"),
    N_("apierr_other"),
    N_("apierr_network"),
    N_("apierr_certificate_unknown"),
    N_("apierr_locked"),
    N_("apierr_call_in_progress"),
    N_("apierr_no_interfaces"),
    N_("apierr_ami_refused"),
    N_("apierr_ami_down"),
    N_("apierr_invalid_interface"),
    N_("apierr_no_such_user"),
)
