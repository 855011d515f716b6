#!/usr/bin/env python3
"""Asterisk AGI on the caller's channel, after Answer(): the support-line dialogue.

Checks working time, collects the certificate number, looks it up and sets CC_CALL_ID,
CC_CERT_NUMBER, CC_CERT_STATUS and CC_ROUTE (callcenter.telephony.ivr.collect_certificate).

The service is found through CALLCENTER_URL and CALLCENTER_TOKEN, else the callcenter
configuration file (CALLCENTER_CONFIG).
"""

from callcenter.telephony.process_agi import exit_now, main

if __name__ == "__main__":
    exit_now(main("collect_certificate"))
