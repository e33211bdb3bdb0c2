"""Privacy auditing: membership inference with LiRA, and poisoning that sharpens it (Truth Serum).

- :func:`lira` / :func:`lira_scores`: the likelihood-ratio membership-inference attack
  of Carlini et al. (IEEE S&P 2022), online and offline, over shadow models trained on
  random halves of a pool; :class:`LiRAResult` holds the scores, the ROC, its AUC and
  the true-positive rate at low false-positive rates.
- :func:`membership_audit`: the experiment of Tramèr et al., "Truth Serum" (ACM CCS
  2022): LiRA on chosen targets with and without the attacker's wrong-label copies of
  them (the attack itself is ``ATTACKS["truth_serum"]``, :mod:`poisonlab.attacks.privacy`).
"""

from poisonlab.privacy.audit import MIN_MODELS, MembershipAudit, membership_audit
from poisonlab.privacy.lira import LiRAResult, lira, lira_scores, logit_confidence, roc

__all__ = [
    "MIN_MODELS",
    "LiRAResult",
    "MembershipAudit",
    "lira",
    "lira_scores",
    "logit_confidence",
    "membership_audit",
    "roc",
]
