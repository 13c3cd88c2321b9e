"""Write the ablation table (jeat_core.paper.ablation): each deviation from the paper and its measured effect.

    python tools/ablation_table.py [--out figures/ablation] [--smoke]

Writes ``<out>.md`` and ``<out>.json``. A row whose models are not shipped, or whose sampler family is
not tuned yet, says what it waits for. ``--smoke``: tiny sizes (checks the pipeline, not the effects).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jeat_core.paper.ablation import ablation_rows, to_markdown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("figures/ablation"), help="path without suffix")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline, not the effects")
    a = ap.parse_args(argv)
    sizes = dict(per_class=2, n_pgd=16, n_aa=16, n_boot=200) if a.smoke else {}
    t0 = time.time()
    rows = ablation_rows(progress=lambda msg: print(f"[ablation] {msg}", file=sys.stderr, flush=True), **sizes)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text(to_markdown(rows))
    a.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "smoke": a.smoke, "sizes": sizes,
                                                      "seconds": round(time.time() - t0, 1)}, indent=1) + "\n")
    print(f"wrote {a.out.with_suffix('.md')} and .json in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
