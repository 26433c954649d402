"""Refresh docs/report-screenshot.png: autotune report's page as headless Chromium shows it.

    python scripts/report_screenshot.py                      # the example transformer, 8 trials
    python scripts/report_screenshot.py --example mlp --trials 6 --out /tmp/shot.png

Runs a real search of an example model into a scratch database (the CLI, as a user would,
with --allow-busy: the page is an illustration, not a measurement), writes its report, opens
it at a laptop's width (1366 CSS pixels) and saves the whole page as a PNG. Prints the console
errors (none expected) and each chart's rendered size. Needs a Chromium binary (Debian:
apt-get install chromium).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import browser  # noqa: E402  (the repository root is not on the path for a script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="transformer")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--width", type=int, default=1366)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    args = parser.parse_args()
    binary = browser.find_chromium()
    if binary is None:
        print("Error: no Chromium binary on PATH; install it (Debian: apt-get install chromium)")
        return 1
    with tempfile.TemporaryDirectory(prefix="autotune-screenshot-") as scratch:
        work = Path(scratch)
        model, db, page = work / f"{args.example}.onnx", work / "autotune.db", work / "r.html"
        for argv in (
            ["example", args.example, "-o", str(model)],
            ["search", str(model), "--db", str(db), "--trials", str(args.trials), "--allow-busy"],
            ["report", str(model), "--db", str(db), "-o", str(page)],
        ):
            subprocess.run([sys.executable, "-m", "autotune", *argv], check=True)
        shown = browser.render(binary, page, width=args.width)
    args.out.write_bytes(shown.png)
    print(f"wrote {args.out} ({args.width}×{shown.height} px, {len(shown.png) // 1024} KiB)")
    print(f"console errors: {shown.errors or 'none'}; page width {shown.scroll_width} px")
    for chart in shown.charts:
        print(
            f"chart {chart['id']}: {chart['width']:.0f}×{chart['height']:.0f} px, "
            f"smallest text {chart['smallestFontPx']:.1f} px"
        )
    return 1 if shown.errors else 0


if __name__ == "__main__":
    sys.exit(main())
