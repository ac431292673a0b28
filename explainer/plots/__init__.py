"""Figures that make a pipeline and a trace visible. Every `plot_*` function returns a `matplotlib.figure.Figure`.

Figures are pure functions of their inputs (a Trace, a pipeline, arrays): they never change a pipeline and never run
a generation. Figures made from a trace carry its prompt, seed, steps, CFG and scheduler in the title, so a PNG lifted
onto a slide still says what made it.

The figures live by topic: `grids` (pictures side by side), `pipeline` (pipeline at a glance, the whole machine,
U-Net anatomy), `text` (tokens, embeddings, similarity, CLIP), `noise` (schedules, forward process), `maps` (PCA/UMAP
of prompts, latents, trajectories), `trace` (filmstrip, CFG), `attention` (cross-attention maps), `controlnet`, `gan`,
`sweeps` (the sweeps of lessons 7-11: CFG, negative prompts, samplers, seeds, resolution), `spectrum` (lesson 4: the
predicted picture's frequency bands per step) and `families` (lesson 12, U-Net vs DiT). The figures of an
experiment take its result object. The numbers behind them are computed
outside the views, in modules named for what they compute (`explainer.anatomy`, `explainer.text`, `explainer.noise`,
`explainer.readouts`, `explainer.arrays`); they are re-exported here too, so `plots.unet_anatomy(...)` keeps working.
"""

from ..anatomy import count_params, pipeline_summary, unet_anatomy
from ..arrays import latent_mosaic, to_rgb
from ..noise import forward_process, noise_schedule
from ..readouts import cfg_delta_map, cfg_delta_norms, final_latents, trajectory
from ..text import (
                    DEFAULT_PROMPT,
                    clip_similarity,
                    cosine_similarity,
                    load_clip,
                    prompt_embeddings,
                    prompt_similarity,
                    prompt_tokens,
)
from ._base import ATTENTION, DIVERGING, MAGNITUDE, trace_caption
from .attention import plot_attention, plot_attention_grid, plot_attention_levels
from .controlnet import (
    plot_conflict,
    plot_control_maps,
    plot_residual_maps,
    plot_residual_norms,
    plot_scale_sweep,
    plot_training_curve,
)
from .families import plot_both_ways, plot_same_prompt
from .gan import plot_gan_grid, plot_interpolations, plot_mode_coverage, plot_stability
from .grids import plot_article_grid, plot_grid, plot_images, plot_interpolation
from .maps import plot_latent_map, plot_prompt_map, plot_trajectories
from .noise import plot_forward_process, plot_noise_schedules
from .pipeline import plot_machine, plot_pipeline, plot_unet_anatomy
from .spectrum import plot_settle_steps, plot_spectrum_steps
from .sweeps import (
    plot_cfg_examples,
    plot_cfg_model_examples,
    plot_cfg_models,
    plot_cfg_sweep,
    plot_cost,
    plot_layout,
    plot_negative_effect,
    plot_negative_examples,
    plot_off_size,
    plot_sampler_examples,
    plot_sampler_study,
    plot_scene_layout,
)
from .text import (
                    plot_clip_similarity,
                    plot_embedding_heatmap,
                    plot_prompt_similarity,
                    plot_tokens,
                    plot_trace_embeddings,
)
from .trace import implied_x0, plot_cfg_branches, plot_cfg_delta_maps, plot_cfg_delta_norm, plot_filmstrip

__all__ = [
    # figures
    "plot_images", "plot_pipeline", "plot_unet_anatomy", "plot_tokens", "plot_embedding_heatmap",
    "plot_prompt_similarity", "plot_clip_similarity", "plot_trace_embeddings", "plot_noise_schedules",
    "plot_forward_process", "plot_prompt_map", "plot_latent_map", "plot_trajectories", "plot_filmstrip",
    "plot_cfg_delta_norm", "plot_cfg_delta_maps", "plot_cfg_branches", "plot_attention", "plot_attention_levels",
    "plot_attention_grid", "trace_caption",
    "plot_gan_grid", "plot_interpolations", "plot_mode_coverage", "plot_stability",
    "plot_control_maps", "plot_training_curve", "plot_scale_sweep", "plot_conflict", "plot_residual_norms",
    "plot_residual_maps",
    "plot_grid", "plot_article_grid", "plot_interpolation", "plot_machine", "plot_cfg_sweep", "plot_cfg_examples",
    "plot_cfg_models",
    "plot_cfg_model_examples", "plot_scene_layout", "plot_negative_effect",
    "plot_negative_examples", "plot_sampler_study", "plot_sampler_examples", "plot_layout", "plot_cost",
    "plot_off_size", "plot_same_prompt", "plot_both_ways",
    "plot_spectrum_steps", "plot_settle_steps",
    # colour maps and the default prompt
    "DIVERGING", "MAGNITUDE", "ATTENTION", "DEFAULT_PROMPT",
    # the numbers behind the figures (defined outside the views, re-exported for old callers)
    "count_params", "pipeline_summary", "unet_anatomy", "to_rgb", "latent_mosaic", "noise_schedule",
    "forward_process", "cfg_delta_map", "cfg_delta_norms", "final_latents", "trajectory", "prompt_tokens",
    "prompt_embeddings", "cosine_similarity", "prompt_similarity", "load_clip", "clip_similarity", "implied_x0",
]
