"""Retrain the shipped models: `python -m explainer.train --stage STAGE [flags]`.

Stages (every one trains through the one loop, `explainer.train.common.fit`):
  all          vae, vae-decoder, clip and unet in order: the shapes-sd pipeline (explainer/train/sd.py)
  vae, vae-decoder, clip, unet   one of those
  gan          a text-conditional GAN on the same scenes, VAE and text encoder (explainer/train/gan.py)
  dit          an SD3-style MMDiT on the shipped VAE and text encoders (explainer/train/dit.py)
  controlnet   a ControlNet for the shipped pipeline, --condition edges|segmentation (explainer/train/controlnet.py)
  judge        the judge's shape classifier (explainer/train/judge.py)

`--world scenes` trains the scenes world's model instead (explainer/train/scenes.py): --stage all | data | vae |
clip | judge | unet | assemble, under --work runs/scenes by default, the pipeline written to --work/scenes-sd (or with
--into-package to explainer/assets/scenes-sd).

Every flag is checked before any data is rendered. Each stage keeps a resumable checkpoint and a log.jsonl under
--work/<stage>/ (continue it with --resume), stops cleanly at --max-minutes, and writes its finished model to --out
(default: under --work). Nothing is written into the package's own assets (the shipped models) without
--into-package. Everything is seeded; a run on the same hardware and thread count repeats itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from . import controlnet, dit, flags, gan, judge, scenes, sd

MODULES = {"all": sd, "vae": sd, "vae-decoder": sd, "clip": sd, "unet": sd, "gan": gan, "dit": dit,
           "controlnet": controlnet, "judge": judge}


WORLDS = ("shapes", "scenes")


def parser(world: str = "shapes") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explainer.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", choices=WORLDS, default="shapes", help="which world's models to train")
    if world == "scenes":
        p.add_argument("--stage", choices=scenes.STAGES, default="all")
        flags.add_common(p)
        scenes.add_arguments(p)
        return p
    p.add_argument("--stage", choices=list(MODULES), default="all")
    p.add_argument("--init-from", type=Path, default=None,
                   help="a shapes-sd pipeline folder to start from: the unet stage continues its unet/ and "
                        "text_encoder/, vae-decoder tunes its vae/, controlnet and dit build on it")
    flags.add_common(p)
    for module in dict.fromkeys(MODULES.values()):
        module.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> None:
    world = argparse.ArgumentParser(add_help=False)
    world.add_argument("--world", choices=WORLDS, default="shapes")
    p = parser(world.parse_known_args(argv)[0].world)
    args = p.parse_args(argv)
    flags.check_common(args, p.error)
    module = scenes if args.world == "scenes" else MODULES[args.stage]
    if args.world == "shapes" and args.init_from is not None and not (args.init_from / "unet").is_dir():
        p.error(f"--init-from must be a pipeline folder with unet/ and text_encoder/, got {args.init_from}")
    module.check_arguments(args, p.error)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    module.run(args)


if __name__ == "__main__":
    main()
