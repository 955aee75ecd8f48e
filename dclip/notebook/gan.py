"""The GAN baselines' models for a notebook context, by the profile's ``gan`` setting."""
from __future__ import annotations

__all__ = ["load_gan_models"]


def load_gan_models(ctx) -> dict:
    """The GAN baselines' models as keyword arguments of :func:`dclip.baselines.comparison.run_gan_baselines`.

    Profile ``gan = "pretrained"``: :func:`dclip.baselines.comparison.load_gan_baselines` (FFHQ StyleGAN2,
    the e4e encoder, CLIP ViT-B/32 and ViT-B/16, LPIPS) with the context's identity network.
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
    if kind != "tiny":
        raise ValueError(f"profile '{profile.name}': unknown gan '{kind}'; use 'pretrained' or 'tiny'.")
    from ..baselines.e4e import tiny_e4e
    from ..baselines.stylegan2 import tiny_stylegan2
    from ..models.lpips import perceptual_distance

    generator, latent_avg = tiny_stylegan2(profile.image_size, seed=profile.seed, device=ctx.device)
    return {"generator": generator, "latent_avg": latent_avg, "clips": [ctx.clip],
            "encoder": tiny_e4e(generator, seed=profile.seed),
            "face_model": ctx.face_model, "perceptual": perceptual_distance(ctx.lpips)}
