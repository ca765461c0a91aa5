"""What a claim of several instances or links adds to the output, and what `show_correct = false` hides.

JSON: `"instances": 24` (instances read), `"links": 3`, `"parts_decided"`, and for a
refuted or undecided claim `"instance": {"l": 2, "j": 1}` and `"link": 2` with
`"false_link": "A ≠ B"` (its two members as typed). Text: one line each.
"""

from __future__ import annotations

# The keys of a claim's JSON that give the correct formula or the answer key away.
HIDDEN_KEYS = ("expected", "expected_latex", "expect", "expect_diagnosis", "expect_matched")


def members(claim) -> list[str]:
    """The chain's members as typed; a gradient or update claim's target first, spelled ∂of/∂wrt or Δwrt."""
    generic = claim.generic
    texts = list(generic.link_texts)
    if len(texts) == generic.links:  # the target is the first member
        if claim.kind == "update":
            head = f"Δ{claim.wrt}"
        else:
            head = f"∂{claim.of}/∂{claim.wrt}"
        texts.insert(0, head)
    return texts


def false_link(claim, outcome) -> str | None:
    """`link 2 of 3 is false: A ≠ B` for a refuted chain, else None."""
    generic = claim.generic
    if outcome is None or outcome.link is None or generic.links == 1 or outcome.verdict.status != "refuted":
        return None
    texts = members(claim)
    return f"link {outcome.link} of {generic.links} is false: {texts[outcome.link - 1]} ≠ {texts[outcome.link]}"


def instance_text(claim, outcome) -> str | None:
    """`instance l=2, j=1 (of 24 instances)`, or how many instances were decided."""
    generic = claim.generic
    plural = "s" if generic.instances != 1 else ""
    if outcome is not None and outcome.instance:
        shown = ", ".join(f"{k}={v}" for k, v in outcome.instance.items())
        return f"instance {shown} (of {generic.instances} instance{plural})"
    if generic.letters:
        return f"{generic.instances} instance{plural} of {', '.join(generic.letters)}"
    return None


def count_text(claim) -> str:
    """The table's note: `(24 instances)`, `(3 links)`, `(24 instances, 3 links)`."""
    generic = claim.generic
    found = []
    if generic.letters:
        found.append(f"{generic.instances} instance{'s' if generic.instances != 1 else ''}")
    if generic.links > 1:
        found.append(f"{generic.links} links")
    return f"({', '.join(found)})" if found else ""


def parts_dict(claim, outcome) -> dict:
    generic = claim.generic
    entry = {"instances": generic.instances, "links": generic.links, "index_letters": list(generic.letters)}
    if outcome is not None:
        entry["parts_decided"] = outcome.decided
        if outcome.verdict.status != "proven":
            entry["instance"] = outcome.instance or {}
            entry["link"] = outcome.link
            text = false_link(claim, outcome)
            if text is not None:
                entry["false_link"] = text.split(": ", 1)[1]
    return entry


def hide_correct(entry: dict) -> None:
    """show_correct = false: no correct formula, corrected formula or answer key in a claim's JSON."""
    for key in HIDDEN_KEYS:
        entry.pop(key, None)
    detail = entry.get("diagnosis_detail")
    if detail:
        detail.pop("corrected", None)
