"""Screenshots of TensorBoard's scalars, images and HParams tabs, for the README.

Starts TensorBoard on a log directory and renders its pages in headless Chromium (Debian's
`chromium` package), so the pictures show what a user of that directory will see.

    python docs/tensorboard_screenshots.py RUN_OR_SWEEP_DIR [--out docs/images] [--prefix NAME]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from tensorboard import program

# tab -> URL fragment; the filters keep each picture on what it is meant to show
PAGES = {
    "scalars": "#scalars&tagFilter=val%2Frecall",
    "images": "#images&tagFilter=sensitivity%2Fbrightness",
    "hparams": "#hparams",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=2200,1100",
    "--virtual-time-budget=20000",
]


def screenshot(url: str, path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--prefix", default="tensorboard")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    args = parser.parse_args()
    server = program.TensorBoard()
    server.configure(
        argv=[None, "--logdir", str(args.logdir), "--port", "0", "--host", "127.0.0.1"]
    )
    url = server.launch()
    args.out.mkdir(parents=True, exist_ok=True)
    for page in args.pages:
        path = args.out / f"{args.prefix}_{page}.png"
        screenshot(url + PAGES[page], path.resolve())
        print(path)


if __name__ == "__main__":
    main()
