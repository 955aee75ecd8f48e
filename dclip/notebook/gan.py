"""The GAN baselines' models for a notebook context, by the profile's ``gan`` setting."""
from __future__ import annotations

__all__ = ["load_gan_models"]


def load_gan_models(ctx) -> dict:
    """The GAN baselines' models as keyword arguments of :func:`dclip.baselines.comparison.run_gan_baselines`.

    Profile ``gan = "pretrained"``: :func:`dclip.baselines.comparison.load_gan_baselines` (FFHQ StyleGAN2,
    the e4e encoder, CLIP ViT-B/32 and ViT-B/16, LPIPS) with the context's identity network.
    ``"toy"``: the shipped toy StyleGAN2 and its e4e (:mod:`dclip.studies.toy_gan`), the toy CLIP, the judge's
    identity read-back as StyleCLIP's identity term and its feature distance as the projection's LPIPS, faces at
    the toy world's 32 px (toy profile).
    ``"tiny"``: a random :func:`dclip.baselines.stylegan2.tiny_stylegan2` at the profile's image size with a
    seeded :func:`dclip.baselines.e4e.tiny_e4e` encoder, and the context's own CLIP, face model and
    LPIPS (smoke profile).
    """
    profile = ctx.profile
    kind = profile.gan
    if kind == "none":
        raise RuntimeError(f"profile '{profile.name}' has no GAN baselines (no StyleGAN2 of the toy faces); "
                           "the StyleCLIP and StyleGAN-NADA columns need the paper profile.")
    if kind == "pretrained":
        from ..baselines.comparison import load_gan_baselines

        return load_gan_baselines(ctx.device, face_model=ctx.face_model)
    if kind == "toy":
        return toy_gan_models(ctx)
    if kind != "tiny":
        raise ValueError(f"profile '{profile.name}': unknown gan '{kind}'; use 'pretrained', 'toy' or 'tiny'.")
    from ..baselines.e4e import tiny_e4e
    from ..baselines.stylegan2 import tiny_stylegan2
    from ..models.lpips import perceptual_distance

    generator, latent_avg = tiny_stylegan2(profile.image_size, seed=profile.seed, device=ctx.device)
    return {"generator": generator, "latent_avg": latent_avg, "clips": [ctx.clip],
            "encoder": tiny_e4e(generator, seed=profile.seed), "directions": _directions(ctx, generator),
            "face_model": ctx.face_model, "perceptual": perceptual_distance(ctx.lpips)}


def _directions(ctx, generator):
    """StyleCLIP's global directions of ``generator`` and the context's CLIP, precomputed with the context's GAN
    settings (:meth:`dclip.baselines.comparison.GanBaselineSettings.global_directions`)."""
    from ..baselines.global_directions import channel_directions

    return channel_directions(generator, ctx.clip, batch=256,
                              **ctx.gan_settings.global_directions().precompute_settings())


def toy_gan_models(ctx) -> dict:
    """The toy world's GAN baselines' models (profile ``gan = "toy"``), keyword arguments of
    :func:`dclip.baselines.comparison.run_gan_baselines`."""
    from ..studies.toy_gan import load_toy_e4e, load_toy_gan
    from ..toy.judging import identity_loss
    from ..toy.nets import judge_perceptual

    generator, latent_avg = load_toy_gan(device=ctx.device)
    return {"generator": generator, "latent_avg": latent_avg, "clips": [ctx.clip],
            "encoder": load_toy_e4e(generator), "directions": _directions(ctx, generator),
            "identity": identity_loss(ctx.judge),
            "perceptual": judge_perceptual(ctx.judge), "frame_size": ctx.profile.image_size}
