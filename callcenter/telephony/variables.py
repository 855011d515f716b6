"""Every channel-variable name and value the dialplan and the scripts share (contract §2)."""

from callcenter.domain.cert_status import *  # noqa: F403 - CC_CERT_STATUS values, defined once

CALL_ID = "CC_CALL_ID"
CERT_NUMBER = "CC_CERT_NUMBER"
CERT_STATUS = "CC_CERT_STATUS"
ROUTE = "CC_ROUTE"
#: set on the caller's channel (SHARED()) by the agent channel's hangup handler: the agent's
#: side hung up first (hangupsource is empty with Local-channel members, fact 17)
AGENT_GONE = "CC_AGENT_GONE"

# CC_ROUTE values: the dialplan branches on these and nothing else.
QUEUE = "QUEUE"
ROUTE_CLOSED = "CLOSED"
REFUSED = "REFUSED"
ROUTES = (QUEUE, ROUTE_CLOSED, REFUSED)

# The scripts, as files in agi_scripts/ and as FastAGI paths.
SCRIPTS = ("collect_certificate", "agent_connected", "call_ended")
