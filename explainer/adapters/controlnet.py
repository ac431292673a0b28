"""Stable Diffusion with a ControlNet (`StableDiffusionControlNetPipeline`): the SD adapter plus the control side.

The ControlNet runs once per denoiser call, right before the U-Net, on the same latents (the conditional rows only
in guess mode) and the control image; it returns one residual per U-Net skip connection (after conv_in, after every
down-block layer and downsampler) and one for the mid block, already multiplied by `controlnet_conditioning_scale`
(and, in guess mode, by ControlNet's 0.1 -> 1 ramp from shallow to deep). The U-Net adds them to its skips and mid
output. A forward hook on `pipe.controlnet` keeps, per call and for the conditional rows, each residual's L2 norm and
its magnitude map (L2 over channels, per position), on the device until the run ends. Nothing it does changes a value
the pipeline computes.

Trace keys: "control.image" (H, W, 3) uint8, the map as the ControlNet got it; "controlnet.norm" (steps, residuals);
"controlnet.map.<name>" (steps, h, w) for each residual name in settings["controlnet_residuals"]
("down 0" ... "down 5", "mid"); settings also carry the residuals' "controlnet_residual_sizes", the scale,
guess mode and the control guidance window.
"""

from __future__ import annotations

from typing import Any

import torch

from ..validation import CONTROL_RANGE, check_bool, check_control_image, check_number
from .sd import SDAdapter


class ControlNetAdapter(SDAdapter):
    family = "sd-controlnet"

    def __init__(self, pipe: Any):
        super().__init__(pipe)
        self.control: dict[str, Any] = {}

    # --- the call ---------------------------------------------------------------------------------------
    def check_control(self, control: dict[str, Any], n: int, height: int | None = None,
                      width: int | None = None) -> dict[str, Any]:
        """Check the control arguments before any work; the pipeline-call kwargs they become. Each map must have the
        size of the image drawn (height x width, the model's own size when None): diffusers would otherwise draw at
        the map's size, or stretch the map to height x width, without a word."""
        image = control.get("control_image")
        if image is None:
            raise ValueError(f"control_image is required for {type(self.pipe).__name__}: pass the control map "
                             "(a PIL image or an (h, w, 3) array, e.g. explainer.shapes.render_edges(scene))")
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if len(images) not in (1, n):
            raise ValueError(f"control_image must be one image or one per prompt ({n}), got {len(images)}")
        dh, dw = self.default_size()
        size = (height or dh, width or dw)
        images = [check_control_image(im, f"control_image[{i}]" if len(images) > 1 else "control_image", size)
                  for i, im in enumerate(images)]
        scale = check_number(control.get("controlnet_conditioning_scale", 1.0), "controlnet_conditioning_scale",
                             *CONTROL_RANGE)
        guess = check_bool(control.get("guess_mode", False), "guess_mode")
        start = check_number(control.get("control_guidance_start", 0.0), "control_guidance_start", 0.0, 1.0)
        end = check_number(control.get("control_guidance_end", 1.0), "control_guidance_end", 0.0, 1.0)
        if start >= end:
            raise ValueError(f"control_guidance_start ({start}) must be below control_guidance_end ({end})")
        self.control = {"controlnet_conditioning_scale": scale, "guess_mode": guess,
                        "control_guidance_start": start, "control_guidance_end": end}
        return {"image": images[0] if len(images) == 1 and n == 1 else images * (n if len(images) == 1 else 1),
                **self.control}

    # --- the ControlNet's residuals ---------------------------------------------------------------------------
    def extra_hooks(self, recorder: Any) -> list[tuple[Any, Any, Any]]:
        n = recorder.n_samples
        rec = recorder.extra_records

        def post(module, args, kwargs, output):
            down, mid = (output[0], output[1]) if isinstance(output, tuple) else (
                output.down_block_res_samples, output.mid_block_res_sample)
            res = [*down, mid]
            rows = slice(res[0].shape[0] - n, res[0].shape[0])  # the conditional rows (all rows in guess mode)
            rec.setdefault("norm", []).append(torch.stack([r[rows].float().flatten(1).norm(dim=1) for r in res], 1))
            for k, r in enumerate(res):
                rec.setdefault(f"map.{k}", []).append(r[rows].float().norm(dim=1))
            if "image" not in rec:
                cond = kwargs.get("controlnet_cond", args[3] if len(args) > 3 else None)
                rec["image"] = [cond[-n:].detach().float().clone()]
                rec["sizes"] = [[list(r.shape[-2:]) for r in res]]

        return [(self.pipe.controlnet, None, post)]

    @staticmethod
    def residual_names(count: int) -> list[str]:
        return [f"down {k}" for k in range(count - 1)] + ["mid"]

    def pack_extra(self, data: dict[str, Any], n: int, cfg: bool, b: int) -> dict[str, torch.Tensor]:
        rec = data["extra_records"]
        if "norm" not in rec:
            return {}
        first = torch.tensor(data["new_step"]).nonzero().flatten()
        norm = torch.stack(rec["norm"])  # (evals, n, residuals)
        out = {"controlnet.norm": norm[first, b]}
        names = self.residual_names(norm.shape[-1])
        for k, name in enumerate(names):
            out[f"controlnet.map.{name}"] = torch.stack(rec[f"map.{k}"])[first, b]
        img = rec["image"][0][b]  # (3, H, W) in [0, 1]
        out["control.image"] = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
        self._sizes = rec["sizes"][0]
        return out

    def settings(self, extra: dict[str, torch.Tensor], n: int, cfg: bool, b: int) -> dict[str, Any]:
        cn = self.pipe.controlnet
        sizes = getattr(self, "_sizes", None)
        out = dict(self.control, controlnet=str(getattr(cn, "name_or_path", "") or cn.config.get("_name_or_path", "")),
                   controlnet_conditioning_channels=list(cn.config.conditioning_embedding_out_channels))
        if sizes is not None:
            out["controlnet_residuals"] = self.residual_names(len(sizes))
            out["controlnet_residual_sizes"] = sizes
        return out

    def guidance_notes(self, cfg: float, cfg_on: bool, negative_prompt: str | None, zero: bool) -> list[str]:
        notes = super().guidance_notes(cfg, cfg_on, negative_prompt, zero)
        if self.control.get("guess_mode") and cfg_on:
            notes.append("guess mode: the ControlNet sees only the conditional rows; the unconditional branch gets no "
                         "residuals, and the residuals are scaled 0.1 (shallow) to 1 (deep)")
        return notes
