#!/usr/bin/env python3
"""Asterisk AGI in the caller's hangup handler: the call ended, and who hung up.

Runs in dead mode after the hangup (callcenter.telephony.ivr.call_ended); also sends any
events an earlier script had to keep while the service was down.

The service is found through CALLCENTER_URL and CALLCENTER_TOKEN, else the callcenter
configuration file (CALLCENTER_CONFIG).
"""

from callcenter.telephony.process_agi import exit_now, main

if __name__ == "__main__":
    exit_now(main("call_ended"))
