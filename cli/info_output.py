"""What ``dgsearch info --missing`` prints: the indexed files gone from disk, by what is gone, and what to do."""

from __future__ import annotations

import shlex

from diffgap_search.cli.output import emitted_as_json, stdout_console
from diffgap_search.info import MissingReport

SHOWN = 20  # groups listed in the table form (--json has them all)


def print_missing(report: MissingReport, *, fmt: str) -> None:
    """``report`` as ``fmt``: the table form lists the first :data:`SHOWN` groups, most files first, with the
    command that takes each out (a folder) or says how (files deleted from a folder still there)."""
    if emitted_as_json(fmt, report.to_dict(), [{"path": p, "gone": g.gone} for g in report.groups for p in g.paths]):
        return
    out = stdout_console()
    if not report.groups:
        out.print(f"every indexed file is on disk ({report.files:,} files in {report.index})", markup=False)
        return
    out.print(f"{report.missing:,} of the {report.files:,} indexed files are no longer on disk:", markup=False)
    for group in report.groups[:SHOWN]:
        n = len(group.paths)
        what = f"{n:,} file{'' if n == 1 else 's'}"
        if group.folder:
            out.print(f"  {group.gone}/ (gone, with {what}): `dgsearch forget {shlex.quote(group.gone)}`; moved:"
                      f" `dgsearch index NEW --moved-from {shlex.quote(group.gone)}`", markup=False, soft_wrap=True)
        else:
            out.print(f"  {group.gone} (deleted): the next `dgsearch index` of its library folder takes it out",
                      markup=False, soft_wrap=True)
    if len(report.groups) > SHOWN:
        rest = report.groups[SHOWN:]
        out.print(f"  and {len(rest):,} more ({sum(len(g.paths) for g in rest):,} files; --json lists them all)",
                  markup=False)
