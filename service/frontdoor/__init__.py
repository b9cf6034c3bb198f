"""The front doors both services share: the password rule, login throttling, body limits and refusal counting.

The gateway and the escrow each keep their own users, sessions and audit log;
what guards the door in front of them is one implementation, here:

* :mod:`service.frontdoor.passwords` — the password rule (zxcvbn's estimator and
  its frequency lists of common passwords and words, plus the user name);
* :mod:`service.frontdoor.throttle` — failed sign-ins counted per account and per
  client address, exponential back-off, then a lock an administrator lifts;
* :mod:`service.frontdoor.limits` — an ASGI middleware bounding every request
  body in size and JSON nesting depth before anything parses it;
* :mod:`service.frontdoor.refusals` — refusals of unauthenticated requests counted
  in memory and summarised into one audit entry per period, so nobody can
  grow a signed log by sending garbage.
"""
