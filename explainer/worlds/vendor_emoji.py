"""Rebuild the vendored emoji subset from the npm tarball (run by a maintainer, never at run time).

    npm pack @lobehub/fluent-emoji-3d@1.1.0
    python -m explainer.worlds.vendor_emoji lobehub-fluent-emoji-3d-1.1.0.tgz

Microsoft's Fluent 3D emoji (MIT licence) as packaged by LobeHub: 256 px WebP. We keep only the emoji the scenes world
draws, downscaled to 128 px PNG (Lanczos), into `explainer/assets/emoji/`, named by the word the world uses.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "assets" / "emoji"
SIZE = 128

#: world name -> file in the package's assets/ folder (Unicode code points).
EMOJI: dict[str, str] = {
    "fox": "1f98a", "cat": "1f408", "dog": "1f415", "rabbit": "1f407", "owl": "1f989", "penguin": "1f427",
    "frog": "1f438", "butterfly": "1f98b", "fish": "1f41f",
    "tree": "1f333", "pine": "1f332", "cactus": "1f335", "sunflower": "1f33b", "mushroom": "1f344",
    "house": "1f3e0", "car": "1f697", "boat": "26f5", "tent": "26fa", "balloon": "1f388", "umbrella": "2602-fe0f",
    "mountain": "26f0-fe0f",
    "sun": "2600-fe0f", "moon": "1f319", "cloud": "2601-fe0f", "star": "2b50", "rainbow": "1f308",
    "fallen_leaf": "1f342", "maple_leaf": "1f341", "herb": "1f33f", "shell": "1f41a",
}

LICENSE = """MIT License

Copyright (c) Microsoft Corporation (Fluent Emoji, https://github.com/microsoft/fluentui-emoji).
Packaged as @lobehub/fluent-emoji-3d 1.1.0, Copyright (c) 2023 LobeHub.
This folder holds a subset of those images, downscaled to 128 px PNG by explainer/worlds/vendor_emoji.py.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def vendor(tarball: Path, out: Path = OUT) -> list[Path]:
    """Extract the subset from `tarball` into `out` as 128 px RGBA PNGs; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(tarball, "r:gz") as tar:
        for name, code in EMOJI.items():
            member = tar.extractfile(f"package/assets/{code}.webp")
            if member is None:
                raise FileNotFoundError(f"{code}.webp (for {name!r}) is not in {tarball}")
            im = Image.open(io.BytesIO(member.read())).convert("RGBA").resize((SIZE, SIZE), Image.LANCZOS)
            path = out / f"{name}.png"
            im.save(path, optimize=True)
            written.append(path)
    (out / "LICENSE").write_text(LICENSE)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tarball", type=Path, help="lobehub-fluent-emoji-3d-1.1.0.tgz from `npm pack`")
    files = vendor(parser.parse_args().tarball)
    print(f"wrote {len(files)} emoji ({sum(f.stat().st_size for f in files) / 1e3:.0f} kB) to {OUT}")
