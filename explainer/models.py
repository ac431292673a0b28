"""Load a text-to-image pipeline: the shipped shapes model by default, or any diffusers pipeline.

The shipped model is a standard `StableDiffusionPipeline` folder inside the package (safetensors only),
so everything the toolkit shows about it works the same way on Stable Diffusion 1.x/2.x/XL.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import torch

from .shipped import (  # noqa: F401 - the shipped models' names live in the torch-free module
    FIRST_PROMPTS,
    SHAPES_MODELS,
    SHIPPED_MODEL,
    SHIPPED_MODELS,
    available_models,
    first_model,
    first_prompt,
)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def quiet_libraries() -> None:
    """Silence progress bars and warnings that mean nothing to a learner (torchvision, safety checker, dtype)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    for pattern in (".*torchvision.*", ".*safety.?checker.*", ".*torch_dtype.*", ".*CLIPImageProcessor.*"):
        warnings.filterwarnings("ignore", message=pattern)


def _resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    if dtype is None:
        return torch.float16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype}")
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def _check_device(device: str) -> str:
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'mps', got {device!r}")
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA GPU here; use device='cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was asked for but this torch has no MPS backend; use device='cpu'")
    return device


def load_pipeline(path_or_id: str | os.PathLike | None = None, device: str = "cpu",
                  dtype: str | torch.dtype | None = None, quiet: bool = True,
                  controlnet: str | os.PathLike | None = None):
    """Load a diffusers text-to-image pipeline.

    controlnet: None, "edges" or "segmentation" (the ControlNets shipped for the shapes model), or a folder holding a
        diffusers ControlNetModel: the pipeline becomes a StableDiffusionControlNetPipeline that takes `image=`.

    path_or_id: None (or "shapes-sd") for the shipped shapes model; "shapes-dit" for the shipped diffusion transformer
        (an SD3-style MMDiT trained on the same world); "scenes-sd" for the scenes world's model (foxes, trees,
        autumn leaves, dawn and dusk: the article's examples); a local pipeline folder; or a hub id such as
        "stable-diffusion-v1-5/stable-diffusion-v1-5" (needs the weights in the local cache or a network).
    device: "cpu", "cuda[:N]" or "mps".  dtype: "float32", "float16" or "bfloat16" (default: fp16 on CUDA, else fp32).
    """
    device = _check_device(device)
    torch_dtype = _resolve_dtype(dtype, device)
    controlnet_path = _controlnet_path(controlnet)
    if quiet:
        quiet_libraries()
    from diffusers import DiffusionPipeline

    if path_or_id is None:
        path_or_id = SHIPPED_MODEL
        if not (SHIPPED_MODEL / "model_index.json").exists():
            raise FileNotFoundError(f"the shipped model is missing from {SHIPPED_MODEL}; reinstall the package "
                                    "or retrain it with `python -m explainer.train`")
    if isinstance(path_or_id, str) and path_or_id in SHIPPED_MODELS:
        name, path_or_id = path_or_id, SHIPPED_MODELS[path_or_id]
        if not (path_or_id / "model_index.json").exists():
            how = {"scenes-sd": "--world scenes --stage all", "shapes-dit": "--stage dit"}.get(name, "--stage all")
            raise FileNotFoundError(f"{name} is not in this install ({path_or_id} holds no model_index.json); "
                                    f"reinstall the package or train it with `python -m explainer.train {how}`")
    if not isinstance(path_or_id, (str, os.PathLike)) or str(path_or_id).strip() == "":
        raise ValueError(f"path_or_id must be None, a folder path or a hub id string, got {path_or_id!r}")
    local = Path(path_or_id).expanduser()
    kwargs = {"torch_dtype": torch_dtype, "use_safetensors": True}
    if local.exists():
        if not (local / "model_index.json").exists():
            raise ValueError(f"path_or_id {str(local)!r} exists but holds no model_index.json: "
                             "pass the folder of a diffusers pipeline (the one that contains model_index.json)")
        check_pipeline_folder(local)
        source = str(local)
    else:
        source = str(path_or_id)
        if source.count("/") != 1 or source.startswith((".", "/", "~")):
            raise ValueError(f"path_or_id {source!r} is neither an existing folder nor a hub id of the form "
                             "'owner/name'")
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = DiffusionPipeline.from_pretrained(source, **kwargs, **_no_safety_checker(source, local),
                                                     **_null_components(local), **shared_parts(local, torch_dtype))
    except OSError as err:
        if local.exists():
            raise
        raise OSError(
            f"could not load {source!r}: it is not a local folder, and the model hub could not be reached or the "
            "weights are not in the local cache. Download the pipeline on a machine with a network "
            f"(e.g. `huggingface-cli download {source} --local-dir ./my-model`), copy the folder here, and pass "
            "load_pipeline('./my-model')."
        ) from err
    if isinstance(pipe, (StableDiffusionPipeline, StableDiffusionXLPipeline)) or hasattr(pipe, "unet") or hasattr(
        pipe, "transformer"
    ):
        pipe = pipe.to(device)
    else:
        raise ValueError(f"{source!r} loaded as {type(pipe).__name__}, which is not a text-to-image pipeline")
    if controlnet_path is not None:
        pipe = _with_controlnet(pipe, controlnet_path, torch_dtype, device)
    pipe.set_progress_bar_config(disable=True)
    shipped = {str(v): k for k, v in SHIPPED_MODELS.items()}
    pipe.explainer_model_id = f"explainer/{shipped[source]}" if source in shipped else source
    if controlnet_path is not None:
        pipe.explainer_model_id += f"+controlnet-{controlnet}" if controlnet in CONTROLNETS else f"+{controlnet_path}"
    return pipe


#: the ControlNets shipped for the shapes model, by condition name
CONTROLNETS = {name: SHIPPED_MODEL.parent / f"controlnet-{name}" for name in ("edges", "segmentation")}


def _controlnet_path(controlnet: str | os.PathLike | None) -> Path | None:
    if controlnet is None:
        return None
    if isinstance(controlnet, str) and controlnet in CONTROLNETS:
        path = CONTROLNETS[controlnet]
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"the shipped ControlNet {controlnet!r} is missing from {path}; retrain it with "
                                    f"`python -m explainer.train --stage controlnet --condition {controlnet}`")
        return path
    if not isinstance(controlnet, (str, os.PathLike)):
        raise ValueError(f"controlnet must be None, one of {sorted(CONTROLNETS)} or a ControlNetModel folder, "
                         f"got {controlnet!r}")
    path = Path(controlnet).expanduser()
    if not (path / "config.json").exists():
        raise ValueError(f"controlnet must be one of {sorted(CONTROLNETS)} or a folder holding a diffusers "
                         f"ControlNetModel (config.json + safetensors), got {str(controlnet)!r}")
    kind = _read_json(path / "config.json").get("_class_name")
    if kind != "ControlNetModel":
        raise ValueError(f"controlnet {str(controlnet)!r} holds a {kind or 'model of unknown class'} (config.json "
                         "_class_name), not a ControlNetModel: pass the folder of a diffusers ControlNetModel")
    return path


def _with_controlnet(pipe, path: Path, torch_dtype: torch.dtype, device: str):
    """The same pipeline's parts plus a ControlNetModel, as a StableDiffusionControlNetPipeline."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

    if not isinstance(pipe, StableDiffusionPipeline):
        raise ValueError(f"controlnet= needs a Stable Diffusion 1.x/2.x pipeline, got {type(pipe).__name__}")
    cn = ControlNetModel.from_pretrained(path, torch_dtype=torch_dtype, use_safetensors=True)
    if cn.config.cross_attention_dim != pipe.unet.config.cross_attention_dim or tuple(
            cn.config.block_out_channels) != tuple(pipe.unet.config.block_out_channels):
        raise ValueError(f"the ControlNet in {path} was not built for this U-Net (block_out_channels "
                         f"{tuple(cn.config.block_out_channels)} vs {tuple(pipe.unet.config.block_out_channels)})")
    parts = {k: v for k, v in pipe.components.items() if k != "image_encoder"}
    parts.setdefault("safety_checker", None)
    parts.setdefault("feature_extractor", None)
    out = StableDiffusionControlNetPipeline(**parts, controlnet=cn.to(device),
                                            requires_safety_checker=False)
    return out.to(device)


def _null_components(local: Path) -> dict:
    """Components a folder lists as [null, null] (e.g. SD3 without T5: text_encoder_3), passed as None.

    diffusers saves such a pipeline but will not load it back unless they are passed explicitly, as its SD3 docs show
    (`from_pretrained(..., text_encoder_3=None, tokenizer_3=None)`).
    """
    index = local / "model_index.json"
    if not index.exists():
        return {}
    entries = read_model_index(local)
    return {k: None for k, v in entries.items() if isinstance(v, list) and len(v) == 2 and v[0] is None
            and k in ("text_encoder_3", "tokenizer_3")}


SHARED_PARTS = "shared_parts.json"


def shared_parts(folder: Path, torch_dtype: torch.dtype = torch.float32) -> dict:
    """The components a pipeline folder takes from another shipped pipeline instead of holding a copy.

    shapes-dit reads the very same VAE and text encoders as shapes-sd; its `shared_parts.json` says so
    (`{"from": "../shapes-sd", "parts": ["vae", "text_encoder", "text_encoder_2"]}`) and they are built here from that
    folder, as SD3 takes them: the VAE with `shift_factor` 0, and CLIPTextModelWithProjection towers (the contrastive
    pair's text tower, and the fine-tuned text encoder, each with the pair's `text_projection`).
    """
    path = Path(folder) / SHARED_PARTS
    if not path.exists():
        return {}
    spec = _read_json(path)
    src, parts = (Path(folder) / spec.get("from", "")).resolve(), spec.get("parts", [])
    if not (src / "model_index.json").exists() or not set(parts) <= {"vae", "text_encoder", "text_encoder_2"}:
        raise ValueError(f"{path} must name a pipeline folder beside it ('from') and parts among vae, text_encoder, "
                         f"text_encoder_2; got {spec}")
    return {k: v for k, v in sd3_parts_from(src, torch_dtype).items() if k in parts}


def write_shared_parts(folder: Path, src: Path) -> None:
    """Drop `folder`'s copies of the parts `sd3_parts_from(src)` rebuilds, and say where they come from instead."""
    import json
    import shutil

    parts = ["vae", "text_encoder", "text_encoder_2"]
    for name in parts:
        shutil.rmtree(Path(folder) / name, ignore_errors=True)
    spec = {"from": os.path.relpath(Path(src).resolve(), Path(folder).resolve()), "parts": parts}
    (Path(folder) / SHARED_PARTS).write_text(json.dumps(spec, indent=1) + "\n")


def sd3_parts_from(src: Path, torch_dtype: torch.dtype = torch.float32) -> dict:
    """A shapes-sd folder's VAE and text encoders as an SD3 pipeline takes them: the VAE with `shift_factor` 0, and
    (text_encoder, text_encoder_2) as CLIPTextModelWithProjection: the text tower of its contrastive CLIP pair
    (`clip/`) and its fine-tuned `text_encoder/`, each with the pair's `text_projection`."""
    import copy

    from diffusers import AutoencoderKL
    from transformers import CLIPModel, CLIPTextModel, CLIPTextModelWithProjection

    vae = AutoencoderKL.from_pretrained(src / "vae", torch_dtype=torch_dtype, use_safetensors=True)
    vae.register_to_config(shift_factor=0.0)  # SD3 decodes latents / scaling_factor + shift_factor

    pair = CLIPModel.from_pretrained(src / "clip", torch_dtype=torch.float32)
    cfg = copy.deepcopy(pair.config.text_config)
    cfg.projection_dim = pair.config.projection_dim

    def tower(m):  # transformers 5 folds text_model into CLIPTextModel; 4.x nests it
        return getattr(m, "text_model", m)

    tuned = CLIPTextModel.from_pretrained(src / "text_encoder", torch_dtype=torch.float32)
    encoders = []
    for text in (pair.text_model, tuned):
        te = CLIPTextModelWithProjection(cfg)
        tower(te).load_state_dict(tower(text).state_dict())
        te.text_projection.load_state_dict(pair.text_projection.state_dict())
        encoders.append(te.to(torch_dtype).eval())
    return {"vae": vae, "text_encoder": encoders[0], "text_encoder_2": encoders[1]}


def _read_json(path: Path) -> dict:
    """A JSON object from `path`; a ValueError naming the file when it is not one."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable JSON file ({err}): repair or replace it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_model_index(folder: str | os.PathLike) -> dict:
    """A pipeline folder's model_index.json as a dict; a ValueError naming the file when it is broken."""
    return _read_json(Path(folder) / "model_index.json")


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".gguf")


def check_pipeline_folder(folder: str | os.PathLike) -> Path:
    """A local pipeline folder that can load: a readable model_index.json, and weights in every model component it
    lists (a component folder with a config.json). Raises ValueError naming what is missing, before any loading."""
    folder = Path(folder).expanduser()
    entries = read_model_index(folder)
    shared = _read_json(folder / SHARED_PARTS).get("parts", []) if (folder / SHARED_PARTS).exists() else []
    for name, value in entries.items():
        if name.startswith("_") or not (isinstance(value, list) and len(value) == 2 and value[0] is not None):
            continue
        if name in shared:
            continue
        part = folder / name
        if not part.is_dir():
            raise ValueError(f"{folder} lists the component {name!r} in model_index.json but has no {name}/ folder")
        if (part / "config.json").exists() and not any(
                f.name.endswith(WEIGHT_SUFFIXES) for f in part.rglob("*") if f.is_file()):
            raise ValueError(f"{part} has a config.json but no weights (*.safetensors): the pipeline folder is "
                             "incomplete; copy the whole folder, weights included")
    return folder


def _no_safety_checker(source: str, local: Path) -> dict:
    """Stable Diffusion 1.x folders list a safety checker; ours and config-built ones have none."""
    index = local / "model_index.json"
    if index.exists() and "safety_checker" not in read_model_index(local):
        return {}
    return {"safety_checker": None, "requires_safety_checker": False} if "xl" not in source.lower() else {}


def is_shapes_model(obj: object) -> bool:
    """True for a pipeline (or a trace) of one of our shapes-world models: the parts that only make sense there (the
    judge's reading, the challenges) show themselves only then."""
    model_id = getattr(obj, "explainer_model_id", None)
    if model_id is None and hasattr(obj, "settings"):
        model_id = obj.settings.get("model_id")
    return isinstance(model_id, str) and model_id.split("+")[0] in {f"explainer/{n}" for n in SHAPES_MODELS}


# --------------------------------------------------------------------------------------------- the session's models
#: this process's model choice and loaded pipelines (a notebook kernel, or the classroom's shared worker), by menu value
_SESSION: dict = {}
_CONTROLNET_ID = re.compile(r"^(?P<base>.+)\+controlnet-(?P<name>[a-z]+)$")


def session_model() -> str:
    """The model this session uses: the last one chosen in a menu, else $EXPLAINER_MODEL, else `first_model()`."""
    return _SESSION.get("model") or os.environ.get("EXPLAINER_MODEL") or first_model()


def model_key(pipe: object) -> str:
    """The menu value naming a pipeline: a shipped model's name, or the folder it was loaded from."""
    mid = str(getattr(pipe, "explainer_model_id", None) or getattr(pipe, "name_or_path", "") or "this model")
    return mid[len("explainer/"):] if mid.startswith("explainer/") else mid


def model_choices(pipe: object = None) -> list[str]:
    """The model menu's values: the shipped models present in this install (`SHIPPED_MODELS`, in order), then
    `pipe`'s own key if it is another model."""
    keys = available_models()
    own = model_key(pipe) if pipe is not None else None
    if own is not None and own not in keys:
        keys.append(own)
    return keys


def load_model(key: str, remember: bool = True):
    """A model by menu value (shipped name or folder), loaded once per session; remembered as the session's choice
    unless remember=False."""
    pipes = _SESSION.setdefault("pipes", {})
    if key not in pipes:
        pipes[key] = load_pipeline(None if key == "shapes-sd" else key)
    if remember:
        _SESSION["model"] = key
    return pipes[key]


def control_conditions(pipe: object) -> list[str]:
    """The shipped ControlNets that fit `pipe`: those present in this install, for the shipped shapes U-Net model
    they were trained on; none for any other model."""
    mid = str(getattr(pipe, "explainer_model_id", "") or "")
    if not is_shapes_model(pipe) or mid.split("+")[0] != "explainer/shapes-sd":
        return []
    return [name for name, path in CONTROLNETS.items() if (path / "config.json").exists()]


def controlnet_pipeline(pipe, condition: str):
    """`pipe` with the shipped `condition` ControlNet (a StableDiffusionControlNetPipeline sharing pipe's U-Net, VAE,
    text encoder and scheduler; only the ControlNet is read from disk), once per session; its model id is the one
    `load_pipeline(controlnet=condition)` gives."""
    key = f"{model_key(pipe)}+controlnet-{condition}"
    pipes = _SESSION.setdefault("pipes", {})
    if key not in pipes:
        cn_pipe = _with_controlnet(pipe, _controlnet_path(condition), pipe.dtype, str(pipe.device))
        cn_pipe.set_progress_bar_config(disable=True)
        cn_pipe.explainer_model_id = f"{pipe.explainer_model_id}+controlnet-{condition}"
        pipes[key] = cn_pipe
    return pipes[key]


def split_controlnet(pipe) -> tuple:
    """A shipped ControlNet pipeline (load_pipeline(controlnet="edges")) -> (the plain pipeline of its parts, "edges"),
    both remembered in the session; any other pipeline -> (pipe, None)."""
    found = _CONTROLNET_ID.match(str(getattr(pipe, "explainer_model_id", "") or ""))
    if not (hasattr(pipe, "controlnet") and found and found["name"] in CONTROLNETS):
        return pipe, None
    from diffusers import StableDiffusionPipeline

    # the pipeline given is the one used (its device, its dtype), and the plain one shares its parts
    plain = StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                    unet=pipe.unet, scheduler=pipe.scheduler, safety_checker=None,
                                    feature_extractor=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    plain.explainer_model_id = found["base"]
    pipes = _SESSION.setdefault("pipes", {})
    for key in [k for k in pipes if k.startswith(f"{model_key(plain)}+controlnet-")]:
        del pipes[key]  # ControlNets built on another copy of the model: rebuilt on this one when chosen
    pipes[model_key(plain)] = plain
    pipes[model_key(pipe)] = pipe
    return plain, found["name"]
