"""What stops a toy edit (dclip.studies.edit_failures): the attack stays in its ball and finds lower losses than
where it starts, pixel descent lowers eq. 9, and the table's diagnosis follows its bars."""
import torch

from dclip.method.attributes import attribute
from dclip.method.losses import directional_clip_loss, text_direction
from dclip.models.clip import load_clip
from dclip.studies.edit_failures import AttackSettings, DescentSettings, pgd_directional, pixel_descent, stands_in_the_way
from dclip.toy.judging import lacking_faces


def _angry(n=4):
    clip = load_clip("toy")
    attr = attribute("angry")
    faces, _ = lacking_faces("angry", n)
    return clip, faces, text_direction(clip, attr.source, attr.target)


def test_the_attack_stays_in_the_ball_and_beats_a_random_point_in_it():
    clip, faces, direction = _angry()
    settings = AttackSettings(steps=15, restarts=2, seed=3)
    attacked, loss = pgd_directional(clip, faces, direction, settings)
    assert (attacked - faces).abs().max() <= settings.epsilon + 1e-6 and attacked.abs().max() <= 1
    generator = torch.Generator().manual_seed(11)
    random_point = (faces + (torch.rand(faces.shape, generator=generator) * 2 - 1) * settings.epsilon).clamp(-1, 1)
    with torch.no_grad():
        assert torch.allclose(directional_clip_loss(clip, faces, attacked, direction), loss, atol=1e-5)
        assert (loss < directional_clip_loss(clip, faces, random_point, direction) - 0.05).all()


def test_pixel_descent_lowers_eq_9():
    clip, faces, direction = _angry()
    settings = DescentSettings(steps=20)
    generator = torch.Generator().manual_seed(settings.seed)
    start = (faces + settings.start_noise * torch.randn(faces.shape, generator=generator)).clamp(-1, 1)
    ended, loss = pixel_descent(clip, faces, direction, settings)
    with torch.no_grad():
        assert loss.mean() < directional_clip_loss(clip, faces, start, direction).mean() - 0.2
    assert ended.abs().max() <= 1


def test_what_stands_in_the_way_follows_the_bars():
    row = {"true_loss": 0.30, "attack_loss": 0.28, "round_trip_hit": 0.9, "targets met": False}
    assert stands_in_the_way(row) == "recipe"
    assert stands_in_the_way({**row, "targets met": True}) == "nothing"
    assert stands_in_the_way({**row, "attack_loss": 0.24}) == "CLIP"           # beaten by more than 0.05
    assert stands_in_the_way({**row, "true_loss": 0.40, "attack_loss": 0.40}) == "CLIP"  # the true edit scores badly
    assert stands_in_the_way({**row, "round_trip_hit": 0.5}) == "generator"
    assert stands_in_the_way({**row, "attack_loss": 0.1, "round_trip_hit": 0.5, "targets met": True}) == "CLIP, generator"


def test_the_truth_control_decides_between_recipe_and_clip():
    row = {"true_loss": 0.30, "attack_loss": 0.28, "round_trip_hit": 0.9, "targets met": False}
    assert stands_in_the_way({**row, "truth_met": True}) == "CLIP"      # a perfect loss gets there, the CLIP's doesn't
    assert stands_in_the_way({**row, "truth_met": False}) == "recipe"   # not even a perfect loss gets there
    assert stands_in_the_way({**row, "attack_loss": 0.1, "truth_met": False}) == "CLIP, recipe"
    assert stands_in_the_way({**row, "round_trip_hit": 0.5, "truth_met": False}) == "generator"
    assert stands_in_the_way({**row, "targets met": True, "truth_met": True}) == "nothing"
    assert stands_in_the_way({**row, "targets met": True, "truth_met": False}) == "nothing"  # the recipe was enough


def test_the_truth_config_keeps_the_recipe_and_drops_the_clip():
    from dclip.method.finetune import FinetuneConfig
    from dclip.studies.edit_failures import truth_config

    config = FinetuneConfig("face", "angry face", t0=301, lr=3e-5, n_iter=6, lambda_l1=0.3, lambda_id=0.5, seed=4)
    control = truth_config(config)
    assert (control.lambda_clip, control.lambda_l1, control.lambda_id, control.lambda_l2) == (0.0, 0.0, 0.0, 1.0)
    assert (control.t0, control.lr, control.n_iter, control.seed) == (301, 3e-5, 6, 4)
