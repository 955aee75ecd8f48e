"""The notebooks' verdicts on the paper's claims, from rows whose outcome is known by construction."""
from dclip.studies import claims


def _table1(maes, paper=(0.020, 0.021, 0.022)):
    return [{"inversion": "DDIM (paper)", "t0": t0, "mae": m, "paper_mae": p}
            for t0, m, p in zip((300, 400, 500), maes, paper)] + \
           [{"inversion": "exact (dclip)", "t0": 300, "mae": 0.5, "paper_mae": None}]


def test_inversion_claims_count_each_t0():
    good = _table1([0.003, 0.004, 0.005])
    assert claims.inversion_is_near_perfect(good).verdict == "reproduces"
    assert claims.inversion_error_grows_with_t0(good).verdict == "reproduces"
    worse = claims.inversion_is_near_perfect(_table1([0.003, 0.030, 0.040]))
    assert (worse.held, worse.cases, worse.verdict) == (1, 3, "partly")
    flat = claims.inversion_error_grows_with_t0(_table1([0.005, 0.004, 0.004]))
    assert (flat.held, flat.cases, flat.verdict) == (0, 2, "does not reproduce")
    assert "t0 300: MAE 0.0030 (paper 0.020)" in claims.inversion_is_near_perfect(good).measured


def test_fig8a_needs_six_steps_worse_and_forty_like_two_hundred():
    def rows(d6, ci6, d40, ci40):
        return [{"S_inv": 40, "S_gen": 6, "versus S_gen": 40, "mae_difference": d6, "ci": ci6, "of": 32},
                {"S_inv": 40, "S_gen": 40, "versus S_gen": 200, "mae_difference": d40, "ci": ci40, "of": 32},
                {"S_inv": 6, "S_gen": 6, "versus S_gen": 40, "mae_difference": -0.1, "ci": [-0.2, -0.05], "of": 32}]
    claim = claims.step_counts_as_the_paper_says(rows(0.01, [0.008, 0.012], 0.0002, [-0.0001, 0.0005]))
    assert (claim.held, claim.cases, claim.verdict) == (2, 2, "reproduces")  # the S_inv = 6 row is not a case
    assert "over 32 images" in claim.measured
    # 6 steps no worse (interval reaches 0); 40 vs 200 significantly apart but by less than 0.005: still the same
    claim = claims.step_counts_as_the_paper_says(rows(0.002, [-0.001, 0.004], 0.003, [0.002, 0.004]))
    assert (claim.held, claim.cases) == (1, 2)
    claim = claims.step_counts_as_the_paper_says(rows(0.01, [0.008, 0.012], 0.02, [0.015, 0.025]))
    assert (claim.held, claim.cases) == (1, 2)  # 200 steps clearly better than 40: not indistinguishable


def _judged(name, t0, hit, ci):
    return {"attribute": name, "t0": t0, "hit": hit, "hit_ci": ci}


def test_fig8b_is_about_which_t0_an_edit_needs_not_that_mae_rises():
    colour_ok = _judged("tanned", 301, 0.9, [0.8, 1.0])
    style = [_judged("pixel_art", 301, 0.1, [0.0, 0.2]), _judged("pixel_art", 501, 0.9, [0.7, 1.0]),
             _judged("pixel_art", 701, 0.95, [0.85, 1.0])]
    claim = claims.t0_depends_on_the_kind_of_edit([colour_ok, *style])
    assert (claim.held, claim.cases, claim.verdict) == (2, 2, "reproduces")
    # pixel art never hit at any t0 (the old toy result): the shape case fails
    never = [{**r, "hit": 0.0, "hit_ci": [0.0, 0.0]} for r in style]
    assert claims.t0_depends_on_the_kind_of_edit([colour_ok, *never]).held == 1
    # a hit interval that reaches 0.5 is not "reaches"
    assert claims.t0_depends_on_the_kind_of_edit([_judged("tanned", 301, 0.6, [0.45, 0.75])]).held == 0
    no_judge = [{"attribute": "tanned", "t0": 301, "mae": 0.1, "hit": None}]
    assert claims.t0_depends_on_the_kind_of_edit(no_judge).verdict == "not measured"


def test_fig9_needs_finetuning_to_reach_the_style_and_latent_optimisation_to_fail():
    rows = [{"attribute": "sketch", "method": "fine-tuning", "s_dir": 0.1, "hit": 0.9, "hit_ci": [0.8, 1.0]},
            {"attribute": "sketch", "method": "latent optimisation", "s_dir": 0.9, "hit": 0.1, "hit_ci": [0.0, 0.2]},
            {"attribute": "pixel_art", "method": "fine-tuning", "s_dir": 0.5, "hit": 0.3, "hit_ci": [0.2, 0.45]},
            {"attribute": "pixel_art", "method": "latent optimisation", "s_dir": 0.4, "hit": 0.0, "hit_ci": [0.0, 0.0]},
            {"attribute": "angry", "method": "fine-tuning", "s_dir": 0.4, "hit": 1.0, "hit_ci": [1.0, 1.0]},
            {"attribute": "angry", "method": "latent optimisation", "s_dir": 0.4, "hit": 0.0, "hit_ci": [0.0, 0.0]}]
    claim = claims.finetuning_beats_latent_optimisation(rows)
    assert (claim.held, claim.cases) == (1, 2) and "angry (in domain, not a case)" in claim.measured
    no_judge = [{k: v for k, v in r.items() if k not in ("hit", "hit_ci")} for r in rows]
    claim = claims.finetuning_beats_latent_optimisation(no_judge)
    assert (claim.held, claim.cases) == (1, 3) and "angry s_dir 0.40" in claim.measured  # a tie does not hold


def test_mixing_needs_both_attributes_more_often_and_each_kept_mostly():
    def rows(mix_both, mix_ci, glasses_mixed):
        return [{"application": "single attribute", "prompt": "angry", "hit": 1.0, "hit_ci": [1.0, 1.0]},
                {"application": "multi-attribute mix", "prompt": "angry", "hit": 0.9, "hit_ci": [0.8, 1.0]},
                {"application": "single attribute", "prompt": "glasses", "hit": 1.0, "hit_ci": [1.0, 1.0]},
                {"application": "multi-attribute mix", "prompt": "glasses", "hit": glasses_mixed,
                 "hit_ci": [glasses_mixed - 0.1, glasses_mixed + 0.1]},
                {"application": "all attributes at once", "prompt": "angry alone", "hit": 0.0, "hit_ci": [0.0, 0.0]},
                {"application": "all attributes at once", "prompt": "glasses alone", "hit": 0.05, "hit_ci": [0.0, 0.1]},
                {"application": "all attributes at once", "prompt": "mix angry + glasses", "hit": mix_both,
                 "hit_ci": mix_ci}]
    assert claims.mixing_edits_several_attributes(rows(0.8, [0.7, 0.9], 0.9)).verdict == "reproduces"
    glasses_lost = claims.mixing_edits_several_attributes(rows(0.8, [0.7, 0.9], 0.25))  # 1.00 -> 0.25 under the mix
    assert (glasses_lost.held, glasses_lost.cases, glasses_lost.verdict) == (3, 4, "partly")
    overlapping = claims.mixing_edits_several_attributes(rows(0.15, [0.05, 0.25], 0.9))
    assert overlapping.held == 3  # beats "angry alone" but its interval overlaps "glasses alone"
    paper_rows = [{"application": "multi-attribute mix", "prompt": "makeup", "s_dir": 0.1}]
    assert claims.mixing_edits_several_attributes(paper_rows).verdict == "not measured"


def test_toy_table1_rows_are_not_held_against_the_paper():
    toy = [{"inversion": "DDIM (paper)", "t0": 300, "mae": 0.007}]
    claim = claims.inversion_is_near_perfect(toy)
    assert claim.verdict == "not measured" and "256² CelebA-HQ" in claim.measured


def test_toy_table1_has_an_absolute_toy_scale_of_its_own():
    rows = [{"inversion": "DDIM (paper)", "t0": t0, "mae": m, "mae_ci": [m - 0.001, m + hi]}
            for t0, m, hi in ((300, 0.003, 0.001), (600, 0.008, 0.0015))]
    kept = [{"inversion": "e4e (toy StyleGAN2)", "t0": None, "attributes_kept": 0.5},  # not a DDIM row: not counted
            {"inversion": "DDIM (toy DDPM)", "t0": 300, "attributes_kept": 1.0},
            {"inversion": "DDIM (toy DDPM)", "t0": 600, "attributes_kept": 0.98}]
    claim = claims.inversion_is_near_perfect_at_toy(rows, kept)
    # t0 600: MAE 0.008 but its interval reaches 0.0095 <= 0.01 (holds); kept 0.98 < 0.99 (fails)
    assert (claim.held, claim.cases, claim.verdict) == (3, 4, "partly")
    assert "0.0080 [0.0070, 0.0095] at t0 600" in claim.measured and "0.98 at t0 600" in claim.measured
    over = [dict(rows[1], mae_ci=[0.007, 0.0101])]
    assert claims.inversion_is_near_perfect_at_toy(over, []).verdict == "does not reproduce"  # the upper end counts
    assert claims.as_rows(claim) == [{"claim": claim.paper, "measured": claim.measured, "verdict": "partly",
                                      "held": 3, "cases": 4}]


def test_report_prints_the_paper_the_measurement_and_the_verdict():
    text = claims.report(claims.inversion_error_grows_with_t0(_table1([0.003, 0.004, 0.005])))
    assert text.splitlines() == ["paper: the reconstruction error grows with t0 (Table 1)",
                                 "  here: MAE 0.0030 (t0 300) -> 0.0040 (t0 400) -> 0.0050 (t0 500)",
                                 "  -> reproduces"]


def test_table3_compares_each_gan_method_per_domain_and_measure():
    summary = [{"method": "DiffusionCLIP", "domain": "celeba_hq", "prompts": "Table 3", "s_dir": 0.17, "id": 0.70},
               {"method": "StyleCLIP", "domain": "celeba_hq", "prompts": "Table 3", "s_dir": 0.13, "id": 0.86},
               {"method": "StyleGAN-NADA", "domain": "celeba_hq", "prompts": "Table 3", "s_dir": 0.16, "id": 0.42},
               {"method": "StyleCLIP", "domain": "celeba_hq", "prompts": "other", "s_dir": 0.9, "id": 0.9},
               {"method": "DiffusionCLIP", "domain": "lsun_church", "prompts": "Table 3", "s_dir": 0.2, "id": None}]
    claim = claims.beats_gan_baselines(summary)
    assert (claim.held, claim.cases, claim.verdict) == (3, 4, "partly")  # StyleCLIP's ID is higher
    assert claims.beats_gan_baselines(summary[:1] + summary[-1:]).verdict == "not measured"
    summary[0]["id"], summary[1]["id"] = 0.70 + 1e-7, 0.70  # equal as printed: a tie, which does not hold
    assert claims.beats_gan_baselines(summary).held == 3


def test_table3_at_toy_compares_s_dir_and_the_toy_identity_per_kind_of_edit():
    def row(edit, kind, method, s_dir, toy_id):
        return {"edit": edit, "kind": kind, "method": method, "s_dir": s_dir, "toy_id": toy_id}

    rows = [row("glasses", "in domain", "DiffusionCLIP", 0.6, 0.7), row("angry", "in domain", "DiffusionCLIP", 0.4, 0.9),
            row("glasses", "in domain", "StyleCLIP", 0.5, 0.5), row("angry", "in domain", "StyleCLIP", 0.3, 0.95),
            row("sketch", "out of domain", "DiffusionCLIP", 0.2, 0.4), row("sketch", "out of domain", "StyleGAN-NADA",
                                                                            0.2, 0.1)]
    claim = claims.beats_gan_baselines_at_toy(rows)
    # in domain: S_dir 0.50 vs 0.40 holds, toy ID 0.80 vs 0.72 holds; out of domain: S_dir 0.20 vs 0.20 (a tie) fails,
    # toy ID 0.40 vs 0.10 holds
    assert (claim.held, claim.cases, claim.verdict) == (3, 4, "partly")
    assert "in domain S_dir 0.50 vs 0.40 StyleCLIP" in claim.measured
    assert "out of domain S_dir 0.20 vs 0.20 StyleGAN-NADA" in claim.measured
    assert claims.beats_gan_baselines_at_toy([]).verdict == "not measured"
