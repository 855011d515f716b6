"""Every channel-variable name and value the dialplan and the scripts share (contract §2)."""

CALL_ID = "CC_CALL_ID"
CERT_NUMBER = "CC_CERT_NUMBER"
CERT_STATUS = "CC_CERT_STATUS"
ROUTE = "CC_ROUTE"

# CC_CERT_STATUS values. NOT_YET_VALID is the lookup's own answer for a certificate whose
# term has not begun; the contract's list names the others.
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

# CC_ROUTE values: the dialplan branches on these and nothing else.
QUEUE = "QUEUE"
ROUTE_CLOSED = "CLOSED"
REFUSED = "REFUSED"
ROUTES = (QUEUE, ROUTE_CLOSED, REFUSED)

# The scripts, as files in agi_scripts/ and as FastAGI paths.
SCRIPTS = ("collect_certificate", "agent_connected", "call_ended")
