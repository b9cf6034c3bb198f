"""Who may do what, for which purpose, with which fields, for how long: a municipality's policy as data.

A pure library (no I/O beyond reading the policy file) used by the gateway and
the agents alike::

    policy = load_policy("policy.toml")          # or default_policy()
    policy.may_send("edu", "school", "absence_days")   # Decision(allowed=True, reason=...)
    policy.may("caseworker", "persons.read")
    policy.purpose("early_support").approvals_required
    policy.retention_days("school")

Every answer is a :class:`Decision` with a Japanese reason that is safe to show
and to log. 個人番号 (My Number) and the identity columns are never allowed as
attributes, whatever the file says.
"""

from policy._model import IDENTITY_COLUMNS, LEGAL_BASES, NETWORKS, PERMISSIONS, Purpose, is_my_number_like
from policy._policy import Decision, Policy, PolicyError, default_policy, load_policy

__all__ = [
    "IDENTITY_COLUMNS",
    "LEGAL_BASES",
    "NETWORKS",
    "PERMISSIONS",
    "Decision",
    "Policy",
    "PolicyError",
    "Purpose",
    "default_policy",
    "is_my_number_like",
    "load_policy",
]
