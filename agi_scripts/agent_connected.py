#!/usr/bin/env python3
"""Asterisk AGI on the agent's channel, from Queue()'s Gosub: the agent answered.

Reports the member interface against the caller's linkedid; this opens the oral window
(callcenter.telephony.ivr.agent_connected).

The service is found through CALLCENTER_URL and CALLCENTER_TOKEN, else the callcenter
configuration file (CALLCENTER_CONFIG).
"""

from callcenter.telephony.process_agi import exit_now, main

if __name__ == "__main__":
    exit_now(main("agent_connected"))
