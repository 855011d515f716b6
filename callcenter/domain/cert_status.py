"""The certificate-status vocabulary (contract §2, CC_CERT_STATUS): its one definition.

Plain strings, no imports: the process-AGI scripts load this through
``telephony/variables.py`` for every call and must stay lean. NOT_YET_VALID is the lookup's
own answer for a certificate whose term has not begun (R-6); the contract's list names the
others. The lookup answers the first five (``LookupStatus``); the IVR adds the rest.
"""

VALID = "VALID"
UNKNOWN = "UNKNOWN"
EXPIRED = "EXPIRED"
NOT_YET_VALID = "NOT_YET_VALID"
NOT_COVERED = "NOT_COVERED"
LOCKED = "LOCKED"
NO_INPUT = "NO_INPUT"
UNVERIFIED = "UNVERIFIED"
CLOSED = "CLOSED"
CERT_STATUSES = (
    VALID,
    UNKNOWN,
    EXPIRED,
    NOT_YET_VALID,
    NOT_COVERED,
    LOCKED,
    NO_INPUT,
    UNVERIFIED,
    CLOSED,
)
