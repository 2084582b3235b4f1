"""Human labels for the codes the pages show (states, votes, severities), in English;
the templates translate them with the page's language (``label`` filter)."""

from __future__ import annotations

from .i18n import N_

LABELS: dict[str, dict[str, str]] = {
    "export": {
        "draft": N_("Draft"), "submitted": N_("Submitted"), "checking": N_("Checks running"),
        "in_review": N_("In review"), "returned": N_("Returned for changes"),
        "approved": N_("Approved"), "rejected": N_("Rejected"), "released": N_("Released"),
        "withdrawn": N_("Withdrawn"), "revoked": N_("Release revoked"),
    },
    "vote": {
        "approve": N_("Approve"), "request_changes": N_("Request changes"),
        "reject": N_("Reject"),
    },
    "severity": {"fail": N_("Fail"), "warn": N_("Warning"), "info": N_("Note"),
                 "pass": N_("Pass")},
    "membership": {
        "requested": N_("Waiting for approval"), "approved": N_("Approved"),
        "rejected": N_("Rejected"), "revoked": N_("Revoked"), "expired": N_("Expired"),
    },
    "project": {"active": N_("Active"), "archived": N_("Archived")},
    "dataset": {"draft": N_("Not published"), "published": N_("Published"),
                "withdrawn": N_("Withdrawn")},
    "classification": {"raw": N_("Raw (identifiable)"),
                       "deidentified": N_("De-identified")},
    "application": {"submitted": N_("Waiting for a decision"), "approved": N_("Approved"),
                    "rejected": N_("Rejected"), "withdrawn": N_("Withdrawn")},
    "technique": {"delete": N_("Deleted"), "pseudonymise": N_("Pseudonymised (HMAC)"),
                  "generalise": N_("Generalised"), "topcode": N_("Top-coded"),
                  "bottomcode": N_("Bottom-coded"), "mask": N_("Masked"),
                  "aggregate": N_("Aggregated (class mean)"), "keep": N_("Kept as is")},
    "frequency": {"continuous": N_("Continuously"), "daily": N_("Daily"),
                  "weekly": N_("Weekly"), "monthly": N_("Monthly"),
                  "quarterly": N_("Quarterly"), "semiannual": N_("Every six months"),
                  "annual": N_("Yearly"), "irregular": N_("Irregularly"),
                  "never": N_("Not updated")},
}


def label(code: object, kind: str) -> str:
    """The English label of ``code`` of ``kind`` (the code itself if none is known)."""
    text = str(getattr(code, "value", code))
    return LABELS.get(kind, {}).get(text, text)
