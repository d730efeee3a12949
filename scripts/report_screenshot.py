"""Screenshot of an HTML report in headless Chromium (the README's picture is made with this).

    .venv/bin/python scripts/report_screenshot.py runs/demo/report.html docs/report-demo.png [--section codes]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report")
    ap.add_argument("png")
    ap.add_argument("--section", default="", help="scroll to this section id first (summary, curves, recon, codes)")
    ap.add_argument("--search", default="", help="type this into the code explorer's search box")
    ap.add_argument("--height", type=int, default=1000)
    a = ap.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": a.height})
        page.goto(Path(a.report).resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", state="attached")
        page.wait_for_timeout(800)
        if a.search:
            page.fill("#explorer-search", a.search)
        if a.section:
            page.locator(f"#{a.section}").scroll_into_view_if_needed()
        page.screenshot(path=a.png)
        browser.close()
    print(a.png)


if __name__ == "__main__":
    main()
