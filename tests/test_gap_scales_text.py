"""How the residual scales read in `dgsearch train`, `eval` and `info`: one figure where a direction's two roles
agree (format 4 always), both where they differ (format 5)."""

from __future__ import annotations

from diffgap_search.gap.directions import describe_scales


def test_one_figure_where_the_roles_agree_both_where_they_differ() -> None:
    same = {"text|audio": 0.0, "audio|text": 0.5}
    assert describe_scales(same) == describe_scales(same, same) == "audio|text 0.5, text|audio 0"
    items = {"audio|text": 0.0, "text|audio": 0.25}
    assert describe_scales({"audio|text": 1.0, "text|audio": 0.25}, items) == (
        "audio|text 1 (queries) / 0 (items), text|audio 0.25")
    assert describe_scales({"audio|text": 1.0}, {"text|audio": 0.75}) == (
        "audio|text 1 (queries) / - (items), text|audio - (queries) / 0.75 (items)")
    assert describe_scales({}, {}) == "-"
