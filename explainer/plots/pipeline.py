"""The pipeline at a glance and the U-Net's anatomy as figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..anatomy import count_params, format_params, pipeline_summary, torch_modules, unet_anatomy
from ..text import DEFAULT_PROMPT
from ._base import MAX_WIDTH_IN, _new_figure, _wrap

if TYPE_CHECKING:  # type hints only: the views never import the experiments at run time
    from ..experiments.pipeline_tour import Tour


def plot_pipeline(pipe: Any, prompt: str = DEFAULT_PROMPT, steps: int = 25, height: int | None = None,
                  width: int | None = None, summary: list[dict] | None = None) -> Figure:
    """Pipeline at a glance: one box per stage (component, parameter count, output shape), arrows between."""
    stages = summary if summary is not None else pipeline_summary(pipe, prompt, steps, height, width)
    n = len(stages)
    # drawn at notebook width (MAX_WIDTH_IN), its fonts sized for the ~1.5 inch a box gets when there are seven
    fig = _new_figure(MAX_WIDTH_IN, 3.6)
    ax = fig.add_subplot()
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1)
    ax.axis("off")
    colours = {"prompt": "#dbe9f6", "token ids": "#dbe9f6", "embeddings": "#c6dbef", "noise latents": "#fde0c5",
               "VAE decode": "#d9f0d3", "pixels": "#d9f0d3"}
    for i, s in enumerate(stages):
        box = FancyBboxPatch((i + 0.03, 0.1), 0.84, 0.8, boxstyle="round,pad=0.02,rounding_size=0.05",
                             facecolor=colours.get(s["stage"], "#fcd5d4"), edgecolor="#444444", linewidth=1.2)
        ax.add_patch(box)
        shape = "\u00d7".join(str(d) for d in s["shape"])
        lines = [s["stage"], s["cls"] if s["component"] else "", f"{format_params(s['params'])} params"
                 if s["params"] else "", f"out: {shape}" if s["stage"] != "prompt" else f"{shape} characters",
                 s["dtype"] if s["stage"] != "prompt" else ""]
        ax.text(i + 0.45, 0.84, lines[0], ha="center", va="top", fontsize=10, weight="bold")
        ax.text(i + 0.45, 0.7, "\n".join(x for x in lines[1:] if x), ha="center", va="top", fontsize=7,
                family="monospace", linespacing=1.5)
        ax.text(i + 0.45, 0.13, _wrap(s["note"], 24), ha="center", va="bottom", fontsize=6.5, color="#333333",
                style="italic")
        if i < n - 1:
            ax.add_patch(FancyArrowPatch((i + 0.87, 0.5), (i + 1.03, 0.5), arrowstyle="-|>", mutation_scale=14,
                                         color="#444444"))
    total = sum(count_params(m) for m in torch_modules(pipe).values()) if pipe is not None else 0
    name = getattr(pipe, "explainer_model_id", None) or getattr(pipe, "name_or_path", "") or type(pipe).__name__
    fig.suptitle(f"Pipeline at a glance: {name} ({type(pipe).__name__}, {format_params(total)} parameters)\n"
                 "prompt \u2192 token ids \u2192 embeddings \u2192 noise latents \u2192 U-Net \u00d7 N \u2192 VAE "
                 "\u2192 pixels (shapes for a batch of one)", fontsize=11)
    return fig


def plot_unet_anatomy(unet: Any, latent_size: int | tuple[int, int] | None = None,
                      anatomy: dict | None = None) -> Figure:
    """The U: down blocks descending on the left, the middle block at the bottom, up blocks rising on the right,
    skip connections as arcs across; each block labelled with channels, resolution and parameters."""
    a = anatomy if anatomy is not None else unet_anatomy(unet, latent_size)
    nd, nu = len(a["down"]), len(a["up"])
    levels = max(nd, nu)
    fig = _new_figure(13, 1.6 + 1.25 * (levels + 1))
    ax = fig.add_subplot()
    ax.axis("off")
    depth = levels + 1
    ax.set_xlim(-0.2, 10.2)
    ax.set_ylim(0.0, depth + 0.4)
    bw, bh = 2.3, 0.72

    def block(x: float, y: float, title: str, body: str, colour: str) -> None:
        ax.add_patch(FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=colour, edgecolor="#333333", linewidth=1.1))
        ax.text(x, y + 0.16, title, ha="center", va="center", fontsize=9.5, weight="bold")
        ax.text(x, y - 0.12, body, ha="center", va="center", fontsize=8, family="monospace")

    def res(r: tuple[int, int]) -> str:
        return f"{r[0]}\u00d7{r[1]}"

    pos_down, pos_up = {}, {}
    for d in a["down"]:
        y = depth - 0.5 - d["level"]
        x = 1.3 + 0.35 * d["level"]
        pos_down[d["level"]] = (x, y)
        tag = "cross-attn" if d["cross_attention"] else "resnet"
        block(x, y, f"down {d['level']}: {tag}", f"{d['channels_in']}\u2192{d['channels_out']} ch @ "
              f"{res(d['resolution'])}\n{format_params(d['params'])} params", "#c6dbef")
    for u in a["up"]:
        lvl = nu - 1 - u["level"]  # up block 0 sits at the deepest level
        y = depth - 0.5 - lvl
        x = 8.7 - 0.35 * lvl
        pos_up[u["level"]] = (x, y)
        tag = "cross-attn" if u["cross_attention"] else "resnet"
        block(x, y, f"up {u['level']}: {tag}", f"{u['channels_in']}\u2192{u['channels_out']} ch @ "
              f"{res(u['resolution'])}\n{format_params(u['params'])} params", "#fdd0a2")
    m = a["mid"]
    block(5.0, depth - 0.5 - levels, "middle" + (" (cross-attn)" if m["cross_attention"] else ""),
          f"{m['channels']} ch @ {res(m['resolution'])}\n{format_params(m['params'])} params", "#fcbba1")
    # the main path
    path = [pos_down[i] for i in sorted(pos_down)] + [(5.0, depth - 0.5 - levels)] + \
           [pos_up[i] for i in sorted(pos_up)]
    for (x0, y0), (x1, y1) in zip(path[:-1], path[1:], strict=True):
        d = bh / 2 if y1 < y0 else -bh / 2  # leave the bottom edge going down, the top edge going up
        ax.add_patch(FancyArrowPatch((x0, y0 - d), (x1, y1 + d),
                                     arrowstyle="-|>", mutation_scale=12, color="#555555", linewidth=1.2,
                                     shrinkA=2, shrinkB=2))
    # skip connections: one arc per down level -> the up block that consumes it, labelled with the count
    counts: dict[tuple[int, int], list[dict]] = {}
    for s in a["skips"]:
        src = s["source"].split()  # "conv_in" | "down i resnet r" | "down i downsample"
        lvl = 0 if src[0] == "conv_in" else int(src[1]) + (src[2] == "downsample")  # the level it lives at
        counts.setdefault((lvl, s["up_level"]), []).append(s)
    for (lvl, uj), items in counts.items():
        if lvl not in pos_down or uj not in pos_up:
            continue
        (x0, y0), (x1, y1) = pos_down[lvl], pos_up[uj]
        ax.add_patch(FancyArrowPatch((x0 + bw / 2, y0 + 0.1), (x1 - bw / 2, y1 + 0.1), arrowstyle="-|>",
                                     mutation_scale=10, color="#2b8cbe", linestyle="--", linewidth=1.0,
                                     connectionstyle="arc3,rad=-0.08"))
        chans = ",".join(sorted({str(i["channels"]) for i in items}))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.19, f"{len(items)} skip{'s' * (len(items) > 1)} ({chans} ch)",
                ha="center", va="top", fontsize=7.5, color="#2b8cbe")  # under the arc's crest, not on it
    ax.text(0.0, depth + 0.15, f"in: {a['in_channels']} ch latent @ {res(a['down'][0]['resolution'])}  "
            f"(conv_in {format_params(a['conv_in_params'])})", fontsize=9, ha="left")
    ax.text(10.0, depth + 0.15, f"out: {a['out_channels']} ch noise prediction "
            f"(conv_out {format_params(a['conv_out_params'])})", fontsize=9, ha="right")
    fig.suptitle(f"U-Net anatomy: {format_params(a['total_params'])} parameters, {len(a['skips'])} skip connections "
                 f"(dashed), text vectors of {a['cross_attention_dim']} dims enter every cross-attention block;\n"
                 f"timestep embedding {format_params(a['time_embedding_params'])} params, added in every resnet",
                 fontsize=11)
    return fig


def plot_machine(tour: Tour, pipe: Any = None) -> Figure:
    """The whole machine of a hand-made run (`pipeline_tour.run_by_hand`) as two lanes that meet in the loop.

    The whole machine as two lanes that meet in the loop: the text lane (prompt -> token ids -> embeddings) runs
    once and feeds every U-Net call; the image lane (seed -> noise latents -> [U-Net -> CFG -> scheduler] x N -> VAE
    -> image) carries the latents. Shapes and parameter counts come from the hand-made run `tour`."""
    st = {s["stage"].split(" (")[0].split(" x ")[0]: s for s in tour.stages}
    shape = lambda k: "\u00d7".join(str(d) for d in st[k]["shape"][1:])  # noqa: E731
    params = lambda k: f"{st[k]['params'] / 1e6:.2f} M params" if st[k]["params"] else "no parameters"  # noqa: E731
    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 10.5)
    ax.set_ylim(-0.05, 4.6)
    ax.axis("off")

    def box(x, y, w, h, title, body, colour):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03,rounding_size=0.08", facecolor=colour,
                                    edgecolor="#444444", linewidth=1.1))
        ax.text(x + w / 2, y + h - 0.12, title, ha="center", va="top", fontsize=9.5, weight="bold")
        ax.text(x + w / 2, y + h - 0.42, body, ha="center", va="top", fontsize=7.5, linespacing=1.35)

    def arrow(a, b, text="", colour="#444444", rad=0.0, text_x=None):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=colour, linewidth=1.3,
                                     connectionstyle=f"arc3,rad={rad}"))
        if text:  # text_x: where along the arrow its label sits (clear of the loop's dashed frame)
            ax.text((a[0] + b[0]) / 2 if text_x is None else text_x, (a[1] + b[1]) / 2 + 0.08, text, ha="center",
                    va="bottom", fontsize=7, color=colour)

    blue, orange, red, green = "#dbe9f6", "#fde0c5", "#fcd5d4", "#d9f0d3"
    # text lane (runs once)
    ax.text(0.05, 4.45, "text lane: runs once per image", fontsize=8, color="#2166ac", style="italic", va="top")
    box(0.1, 3.05, 1.5, 1.15, "prompt", _wrap(f"\u201c{tour.prompt}\u201d", 20), blue)
    box(2.0, 3.05, 1.6, 1.15, "tokenizer", f"token ids\n{shape('token ids')}\n{params('token ids')}", blue)
    box(4.0, 3.05, 1.9, 1.15, "text encoder", f"embeddings\n{shape('text embeddings')}\n"
        f"{params('text embeddings')}", blue)
    arrow((1.6, 3.62), (2.0, 3.62))
    arrow((3.6, 3.62), (4.0, 3.62))
    # image lane
    ax.text(0.05, 2.45, "image lane: the latents", fontsize=8, color="#b35806", style="italic", va="top")
    box(0.1, 0.75, 1.5, 1.3, "seed", f"noise latents\n{shape('noise latents')}\nstd {tour.noise_std:.2f}", orange)
    ax.add_patch(FancyBboxPatch((2.0, 0.3), 5.4, 2.3, boxstyle="round,pad=0.03,rounding_size=0.1",
                                facecolor="none", edgecolor="#b2182b", linewidth=1.5, linestyle="--"))
    ax.text(7.3, 2.45, f"the loop, \u00d7 {tour.steps} steps\n(t = timestep: how noisy x_t still is)", ha="right",
            va="top", fontsize=7.5, color="#b2182b")
    box(2.2, 0.75, 2.0, 1.3, "U-Net", f"predicts the noise in x_t\ncond + uncond (CFG)\n{params('U-Net')}", red)
    box(4.45, 0.75, 1.1, 1.3, "CFG", "uncond +\ns\u00b7(cond\u2212\nuncond)", red)
    box(5.8, 0.75, 1.4, 1.3, "scheduler", "x_t \u2192 x_t-1\nremoves some\nnoise", red)
    box(7.75, 0.75, 1.2, 1.3, "VAE", f"decode\n{params('VAE decode')}", green)
    box(9.2, 0.75, 1.2, 1.3, "image", f"{shape('VAE decode')}\npixels", green)
    arrow((1.6, 1.4), (2.2, 1.4), "x_T", text_x=1.78)
    arrow((4.2, 1.4), (4.45, 1.4))
    arrow((5.55, 1.4), (5.8, 1.4))
    arrow((6.5, 0.75), (3.2, 0.75), colour="#b2182b", rad=-0.3)
    ax.text(4.85, 0.12, "next x_t, next t", ha="center", fontsize=7, color="#b2182b")
    arrow((7.2, 1.55), (7.75, 1.55), "x_0", text_x=7.6)
    arrow((8.95, 1.4), (9.2, 1.4))
    # the text enters every U-Net call
    arrow((4.95, 3.05), (3.5, 2.05), colour="#2166ac")
    ax.text(5.0, 2.7, "embeddings of the prompt and of \u201c\u201d\nenter every U-Net call", ha="left", va="bottom",
            fontsize=7.5, color="#2166ac")  # above the loop's dashed frame, right of the arrow
    name = getattr(pipe, "explainer_model_id", None) or "the shipped model" if pipe is not None else "the pipeline"
    fig.suptitle(f"The whole machine ({name}): the text is encoded once and enters the loop at every U-Net call; "
                 f"seed {tour.seed}, CFG {tour.cfg:g}", fontsize=10)
    return fig
