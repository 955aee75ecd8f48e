"""Training the toy world's models on the CPU: the CLIP and the judge, and the training faces every toy trainer
draws (the DDPM's trainer is :mod:`dclip.toy.ddpm_training`).

Each trainer draws fresh faces from :mod:`dclip.toy.domain` at every step (training seeds only,
below ``HELD_OUT_SEED``), is seeded end to end, shows a tqdm bar, and writes ``<name>.safetensors``
plus a ``<name>.json`` sidecar (settings, the domain's version and hash, CPU time, final metrics).
It saves every ``save_every`` steps too, so a stopped run leaves a usable model, and a resume file beside it
(``<name>.resume.pt``): started again with the same settings, the run continues from its last save and ends with
the weights an uninterrupted run would have.

Settings live in one block of literals per model (:data:`CLIP_SETTINGS`, :data:`JUDGE_SETTINGS`);
``python -m dclip toy train <model> --steps N`` overrides the step count.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.folder import user_models_dir, write_model
from . import corruptions, domain
from .training_log import TrainingLog
from .nets import (CLIP_CONFIG, COLOUR_HEADS, FORM, IDENTITY_RANGES, JUDGE_HEADS, Judge,
                   identity_vector)

__all__ = ["domain_record", "draw_batch"]

# -- training faces -----------------------------------------------------------------------------

def draw_batch(step: int, batch_size: int, *, seed: int, styles=("photo",)) -> tuple[torch.Tensor, list, list]:
    """Training batch ``step``: faces with seeds ``[seed, step * batch_size + i]`` (all below HELD_OUT_SEED),
    style ``i`` taken round-robin from ``styles``. Returns (images in [-1, 1], records, styles)."""
    start = step * batch_size
    if start + batch_size > domain.HELD_OUT_SEED:
        raise ValueError("the training run would reach the held-out seeds; use fewer steps or a smaller batch.")
    records = domain.faces(start, batch_size, seed=seed)
    chosen = [styles[(start + i) % len(styles)] for i in range(batch_size)]
    images = domain.to_tensor([domain.render(f, s) for f, s in zip(records, chosen)])
    return images, records, chosen


def domain_record() -> dict:
    """What a shipped model records about the images it was trained on."""
    return {"version": domain.DOMAIN_VERSION, "hash": domain.domain_hash(), "size": domain.SIZE}


# -- captions ----------------------------------------------------------------------------------------

_STYLE_WORDS = {
    "photo": ("a photo of {}", "a photograph of {}", "a picture of {}", "a portrait photo of {}"),
    "sketch": ("a sketch of {}", "a pencil sketch of {}", "a line drawing of {}", "a drawing of {}"),
    "pixel art": ("pixel art of {}", "a pixel art image of {}", "a pixelated picture of {}", "8-bit pixel art of {}"),
}
_NEUTRAL = ("{}", "a {}", "an image of {}", "the {}")
_PHRASES = {
    "skin": {"light": ("light skin", "pale skin"), "tan": ("tan skin", "tanned skin"),
             "dark": ("dark skin", "dark brown skin")},
    "hair": {"black": ("black hair",), "blond": ("blond hair", "blonde hair"), "red": ("red hair", "ginger hair"),
             "gray": ("gray hair", "grey hair")},
    "glasses": {"yes": ("glasses", "eyeglasses"), "no": ("no glasses",)},
    "background": {c: (f"a {c} background",) for c in domain.ATTRIBUTES["background"]},
}
_NOUNS = ("face", "person", "cartoon face")
_EXPRESSION = {"neutral": ("neutral", "expressionless"), "smiling": ("smiling", "happy"),
               "frowning": ("frowning", "angry")}


def _one(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def caption(face: domain.Face, style: str, rng: np.random.Generator) -> str:
    """A varied caption of ``face`` in ``style``: the expression is named with probability 0.8, each other
    attribute with probability 0.6, the style
    with probability 0.8 (0.5 for photos), in a random order of phrases."""
    noun = _one(rng, _NOUNS)
    if rng.random() < 0.8:
        noun = f"{_one(rng, _EXPRESSION[face.expression])} {noun}"
    extras = []
    visible = ("glasses",) if style == "sketch" else ("hair", "skin", "glasses")  # a sketch has no colours
    for name in visible:
        if rng.random() < 0.6:
            extras.append(_one(rng, _PHRASES[name][getattr(face, name)]))
    rng.shuffle(extras)
    text = f"{noun} with {' and '.join(extras)}" if extras else noun
    if style != "sketch" and rng.random() < 0.4:
        text += f" on {_PHRASES['background'][face.background][0]}"
    if rng.random() < (0.5 if style == "photo" else 0.8):
        return _one(rng, _STYLE_WORDS[style]).format(_article(text))
    return _one(rng, _NEUTRAL).format(text)


def caption_vocabulary() -> frozenset[str]:
    """Every word of the captions the toy CLIP is trained on (:func:`caption`'s phrases and the corruptions'
    :data:`dclip.toy.corruptions.CAPTIONS`), split on spaces and case-folded: the words its text tower learnt."""
    phrases = [*(t.format("") for ts in _STYLE_WORDS.values() for t in ts), *(t.format("") for t in _NEUTRAL),
               *_NOUNS, *(x for v in _EXPRESSION.values() for x in v),
               *(x for attr in _PHRASES.values() for v in attr.values() for x in v),
               "with", "and", "on", "a", "an", *(x for v in corruptions.CAPTIONS.values() for x in v)]
    return frozenset(word.casefold() for phrase in phrases for word in phrase.split())


def unknown_words(text: str) -> list[str]:
    """The words of ``text`` the toy CLIP never saw in training (:func:`caption_vocabulary`), in their order,
    case-folded, each once; surrounding punctuation is not part of a word."""
    known, out = caption_vocabulary(), []
    for word in text.split():
        word = word.strip(".,;:!?\"'()").casefold()
        if word and word not in known and word not in out:
            out.append(word)
    return out


def _article(text: str) -> str:
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


# -- the CLIP ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipSettings:
    # Expression (a 2-pixel mouth) is the slowest attribute to learn; augmentation (see _augment_clip)
    # keeps the image encoder from reading global tints and blur, which fine-tuning would otherwise exploit.
    steps: int = 3000
    batch_size: int = 96       # image-caption pairs per step, styles round-robin ...
    broken: int = 16           # ... plus this many broken images (hard negatives) captioned as what they are
    lr: float = 1e-3           # AdamW with a linear warm-up, then cosine decay to lr / 10
    warmup: int = 50
    weight_decay: float = 0.05
    seed: int = 1
    threads: int = 1
    save_every: int = 100


CLIP_SETTINGS = ClipSettings()


def _cosine_lr(step: int, steps: int, lr: float, warmup: int) -> float:
    """The learning rate at ``step``: linear warm-up, then cosine decay to lr / 10. A Python float: it lands in the
    optimizer's state, which a resume file loads with ``weights_only=True`` (a NumPy scalar there would not load)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_clip(seed: int = 0):
    """A random toy CLIP wrapped as :class:`dclip.clip_loss.Clip` (trainable; not frozen)."""
    import open_clip

    from ..models.clip import OPENAI_MEAN, OPENAI_STD, Clip, bpe_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**CLIP_CONFIG)
    return Clip(model=model, tokenizer=bpe_tokenizer(CLIP_CONFIG["text_cfg"]["context_length"]), image_size=domain.SIZE, mean=OPENAI_MEAN,
                std=OPENAI_STD, device=torch.device("cpu"), name="toy-clip")


def clip_zero_shot(clip, n: int = 300, start: int = domain.HELD_OUT_SEED) -> dict:
    """Zero-shot accuracy on ``n`` held-out faces: each attribute on photos (prompt "a photo of a face
    with ..."), the style over all styles. Returns {attribute or "style": accuracy}."""
    from ..models.clip import encode_images

    prompts = {
        "skin": [f"a photo of a face with {v} skin" for v in domain.ATTRIBUTES["skin"]],
        "hair": [f"a photo of a face with {v} hair" for v in domain.ATTRIBUTES["hair"]],
        "expression": [f"a photo of a {_EXPRESSION[v][0]} face" for v in domain.ATTRIBUTES["expression"]],
        "glasses": ["a photo of a face with no glasses", "a photo of a face with glasses"],
        "background": [f"a photo of a face on a {v} background" for v in domain.ATTRIBUTES["background"]],
        "style": [f"{_STYLE_WORDS[s][0].format('a face')}" for s in domain.STYLES],
    }
    x, records = domain.face_set(start, n)
    with torch.no_grad():
        photo = encode_images(clip, x)
        result = {}
        for name, texts in prompts.items():
            text = F.normalize(clip.model.encode_text(clip.tokenizer(texts)).float(), dim=-1)
            if name == "style":
                hits = []
                for k, style in enumerate(domain.STYLES):
                    xs = x if style == "photo" else domain.to_tensor([domain.render(f, style) for f in records])
                    hits.append((encode_images(clip, xs) @ text.T).argmax(1) == k)
                result[name] = float(torch.cat(hits).float().mean())
            else:
                truth = torch.tensor([domain.ATTRIBUTES[name].index(getattr(f, name)) for f in records])
                result[name] = float(((photo @ text.T).argmax(1) == truth).float().mean())
    return result


def _augment_clip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What the toy CLIP must not read as a caption's content: a global tint and contrast change (up to
    ±0.1 per channel, ×0.85..1.15 on the [-1, 1] scale; far below the gaps between the domain's colours).
    (Measured: with shifts of up to 2 pixels as well, 3000 steps left the CLIP at chance on expression; with
    blur and pixel noise too, on glasses as well: the 2-pixel mouth and the rims did not survive them.)"""
    n = x.shape[0]
    tint = 0.2 * (torch.rand(n, 3, 1, 1, generator=generator) - 0.5)
    contrast = 0.85 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
    return (x * contrast + tint).clamp(-1, 1)


def save_clip(clip, path: Path, meta: dict, *, final: bool) -> None:
    """Write the CLIP in training to ``path`` (fp16) with ``meta``, the ``final`` time with :func:`clip_zero_shot`'s."""
    if final:
        clip.model.eval()
        meta["zero_shot_held_out"] = clip_zero_shot(clip)
    write_model(clip.model, path, meta, half=True)
    clip.model.train()


def contrastive_loss(clip, step: int, settings: ClipSettings, generator: torch.Generator) -> torch.Tensor:
    """The toy CLIP's training loss at ``step``: symmetric InfoNCE over ``settings.batch_size`` fresh (face,
    caption) pairs in every style (augmented, :func:`_augment_clip`) and ``settings.broken`` broken images
    captioned as what they are."""
    from ..models.clip import encode_images

    x, records, styles = draw_batch(step, settings.batch_size + settings.broken, seed=settings.seed,
                                    styles=domain.STYLES)
    rng = np.random.default_rng([settings.seed, 7, step])
    n = settings.batch_size
    texts = [caption(f, s, rng) for f, s in zip(records[:n], styles[:n])]
    broken, kinds = corruptions.corrupt_mixed(x[n:], generator)
    texts += [_one(rng, corruptions.CAPTIONS[k]) for k in kinds]
    image = encode_images(clip, torch.cat([_augment_clip(x[:n], generator), broken]))
    text = F.normalize(clip.model.encode_text(clip.tokenizer(texts)), dim=-1)
    logits = clip.model.logit_scale.exp() * image @ text.T
    labels = torch.arange(len(texts))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def train_clip(settings: ClipSettings = CLIP_SETTINGS, out: Path | None = None, name: str = "toy_clip", *,
               progress: bool | None = None, init: Path | None = None) -> dict:
    """Train the toy CLIP contrastively (symmetric InfoNCE with a learned temperature) on fresh
    (face, caption) pairs in every style, and on broken images (:data:`dclip.toy.corruptions.TRAINING_KINDS`)
    captioned as what they are ("a blurry image", "colour blobs"): hard negatives, so that a fine-tune cannot
    raise the similarity to "pixel art" or "gray hair" by drawing a blob or a tint. Images go through :func:`dclip.clip_loss.encode_images`, the
    preprocessing every dclip loss uses. Shipped in fp16."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    clip = build_clip(settings.seed)
    if init is not None:  # continue from a saved toy CLIP (its sidecar is kept under "init")
        from safetensors.torch import load_file

        clip.model.load_state_dict({k: v.float() for k, v in load_file(str(init)).items()})
    model = clip.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    meta = {"model": "toy CLIP (open_clip.CLIP)", "clip_config": CLIP_CONFIG, "settings": asdict(settings),
            "domain": domain_record(), "styles": list(domain.STYLES), "tokenizer": "open_clip SimpleTokenizer",
            "mean": list(clip.mean), "std": list(clip.std)}
    if init is not None:
        meta["init"] = json.loads(Path(init).with_suffix(".json").read_text())
    out = Path(out or user_models_dir())
    log = TrainingLog(settings, meta, out, name, modules={"model": model}, optimizers={"adamw": opt},
                   generators={"augment": generator})
    for step in log.start("toy CLIP", progress):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, settings.steps, settings.lr, settings.warmup)
        loss = contrastive_loss(clip, step, settings, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        if log.record(step, loss.item()):
            save_clip(clip, out / name, meta, final=step + 1 == settings.steps)
            log.saved()
    log.finish()
    return meta


# -- the judge ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeSettings:
    steps: int = 1500
    batch_size: int = 64       # well-formed faces per step (styles round-robin) ...
    broken: int = 32           # ... plus this many broken ones (a training corruption each)
    lr: float = 2e-3
    warmup: int = 20
    identity_weight: float = 10.0  # the identity head's MSE (parameters in [0, 1]) beside the cross-entropies
    seed: int = 2
    threads: int = 2
    save_every: int = 100


JUDGE_SETTINGS = JudgeSettings()


def _degrade(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What a well-formed image may still show after a diffusion edit, and the judge must accept: a light
    blur (a 3 x 3 mean at up to 50 %) and pixel noise up to σ 0.08; far below the corruptions it refuses."""
    n = x.shape[0]
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    w = 0.5 * torch.rand(n, 1, 1, 1, generator=generator) * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    sigma = 0.08 * torch.rand(n, 1, 1, 1, generator=generator)
    return ((1 - w) * x + w * blurred + sigma * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def _labels(records, styles) -> dict[str, torch.Tensor]:
    """Class indices per head; -100 (ignored) for colour heads on sketches."""
    out = {}
    for name, values in JUDGE_HEADS.items():
        if name == "style":
            out[name] = torch.tensor([values.index(s) for s in styles])
        else:
            out[name] = torch.tensor([-100 if (s == "sketch" and name in COLOUR_HEADS) else values.index(getattr(f, name))
                                      for f, s in zip(records, styles)])
    return out


def judge_accuracy(judge: Judge, n: int = 300, start: int = domain.HELD_OUT_SEED) -> dict:
    """Held-out accuracy per head: attributes on photos, the style over all styles; and the identity
    head's mean absolute error on photos (parameters scaled to [0, 1])."""
    x, records = domain.face_set(start, n)
    photo = judge.predict(x)
    result = {name: float(np.mean([p[name] == getattr(f, name) for p, f in zip(photo, records)]))
              for name in domain.ATTRIBUTES}
    hits = []
    for style in domain.STYLES:
        xs = x if style == "photo" else domain.to_tensor([domain.render(f, style) for f in records])
        hits += [p["style"] == style for p in judge.predict(xs)]
    result["style"] = float(np.mean(hits))
    truth = torch.stack([identity_vector(f) for f in records])
    result["identity_mae"] = float((torch.stack([p["identity"] for p in photo]) - truth).abs().mean())
    return result


def calibrate_judge(judge: Judge, n: int = 300, quantile: float = 0.99, *, generator: torch.Generator,
                    unet=None) -> list[float]:
    """Set the judge's ``rerender_threshold`` of each style to the ``quantile`` of the re-rendering residual
    (:func:`dclip.toy.nets.rerender_residual`) over well-formed validation images of that style: ``n`` faces
    drawn in it, lightly degraded as in training. Photo-style faces are what the toy DDPM draws, so for them
    the set also holds the same faces with colours up to twice the domain's jitter off the palette and the toy
    DDPM's own DDIM reconstructions (t0 300 and 500, 40 steps; ``unet``: default the shipped toy DDPM). 1 % of
    such images are refused. Chosen on validation faces, never on a corruption."""
    from dataclasses import replace

    from ..method.ddim import generate, invert
    from ..models.unet import load_unet
    from .nets import rerender_residual

    records = domain.faces(domain.VALIDATION_SEED, n)
    rng = np.random.default_rng([domain.VALIDATION_SEED, 1])
    wider = [replace(f, jitter=tuple(int(v) for v in rng.integers(-24, 25, size=3))) for f in records]
    unet = unet if unet is not None else load_unet("toy")
    for k, style in enumerate(domain.STYLES):
        x = _degrade(domain.to_tensor([domain.render(f, style) for f in records]), generator)
        if style == "photo":
            photos = domain.to_tensor([domain.render(f, style) for f in records[:96]])
            with torch.no_grad():
                recs = [generate(unet, invert(unet, photos, t0, 40), t0, 40) for t0 in (300, 500)]
            x = torch.cat([x, _degrade(domain.to_tensor([domain.render(f, style) for f in wider]), generator), *recs])
        residual = rerender_residual(judge, x, judge.read(x))
        judge.rerender_threshold[k] = float(torch.quantile(residual, quantile))
    return [round(float(v), 4) for v in judge.rerender_threshold]


def _judge_loss(judge: Judge, x, records, styles, broken, settings: JudgeSettings) -> torch.Tensor:
    """Cross-entropy per head and on the identity parameters for the well-formed images ``x``; the form
    head's cross-entropy on ``x`` (well-formed) and ``broken``."""
    logits, labels = judge(torch.cat([x, broken])), _labels(records, styles)
    n = len(x)
    loss = sum(F.cross_entropy(logits[k][:n], labels[k], ignore_index=-100) for k in JUDGE_HEADS)
    form = torch.cat([torch.full((n,), FORM.index("well-formed")), torch.full((len(broken),), FORM.index("broken"))])
    loss = loss + F.cross_entropy(logits["form"], form)
    truth = torch.stack([identity_vector(f) for f in records])
    return loss + settings.identity_weight * F.mse_loss(logits["identity"][:n], truth)


def train_judge(settings: JudgeSettings = JUDGE_SETTINGS, out: Path | None = None, name: str = "toy_judge", *,
                progress: bool | None = None) -> dict:
    """Train the judge on fresh faces in every style (lightly degraded at random) and on broken images
    (:data:`dclip.toy.corruptions.TRAINING_KINDS` only; the held-out kinds measure it afterwards)."""
    from .judging import refusal_report

    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    judge = Judge().train()
    opt = torch.optim.AdamW(judge.parameters(), lr=settings.lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(settings.seed)
    meta = {"model": "toy judge (CNN classifier)", "heads": {k: list(v) for k, v in JUDGE_HEADS.items()},
            "form": list(FORM), "identity": {k: list(v) for k, v in IDENTITY_RANGES.items()},
            "settings": asdict(settings), "domain": domain_record(), "styles": list(domain.STYLES),
            "broken_kinds_trained": list(corruptions.TRAINING_KINDS)}
    out = Path(out or user_models_dir())
    log = TrainingLog(settings, meta, out, name, modules={"judge": judge}, optimizers={"adamw": opt},
                   generators={"augment": generator})
    for step in log.start("toy judge", progress):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, settings.steps, settings.lr, settings.warmup)
        x, records, styles = draw_batch(step, settings.batch_size + settings.broken, seed=settings.seed,
                                        styles=domain.STYLES)
        broken, _ = corruptions.corrupt_mixed(x[settings.batch_size:], generator)
        n = settings.batch_size
        loss = _judge_loss(judge, _degrade(x[:n], generator), records[:n], styles[:n], broken, settings)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log.record(step, loss.item()):
            if step + 1 == settings.steps:
                judge.eval()
                meta["rerender_threshold"] = calibrate_judge(judge, generator=generator)
                meta["accuracy_held_out"] = judge_accuracy(judge)
                meta["refusal_held_out"] = refusal_report(judge)
            write_model(judge.eval(), out / name, meta)
            log.saved()
            judge.train()
    log.finish()
    return meta
