"""Error versus discard on small synthetic score arrays: known answers, ties, conventions, ECE."""
import math
import warnings

import numpy as np
import pytest

from plqa_nb.batch import atomic_save_csv
from plqa_nb.evaluation.erc import (CONVENTIONS, ERC_COLUMNS, SUMMARY_COLUMNS, erc_curve, erc_plotly, erc_rows,
                                    evaluate_erc, expected_calibration_error, oracle_curve, pair_quality, pauc,
                                    random_rejection_curve, read_results, summary_rows, threshold_at_fmr)

# 10 genuine pairs; impostors put the threshold just above 0.4 at FMR 0.1 (k = 1 false match allowed)
G = np.array([0.2, 0.8, 0.3, 0.9, 0.7, 0.1, 0.95, 0.85, 0.6, 0.75])
GQ = np.array([0.1, 0.9, 0.5, 0.8, 0.6, 0.3, 0.95, 0.7, 0.2, 0.85])
IMP = np.array([0.45, 0.4] + [0.0] * 8)
# by quality: 0.1 (error), 0.2, 0.3 (error), 0.5 (error), then only matches: FNMR 3/10, 2/9, 2/8, 1/7, 0/6, ...
EXPECTED = [0.3, 2 / 9, 2 / 8, 1 / 7, 0.0, 0.0]


def fmr_of(imp, t):
    return np.mean(np.asarray(imp) >= t)


def test_threshold_is_the_smallest_with_fmr_at_most_the_target():
    t = threshold_at_fmr(np.arange(1, 11) / 10, 0.1)
    assert 0.9 < t <= 1.0 and fmr_of(np.arange(1, 11) / 10, t) == 0.1
    rng = np.random.default_rng(0)
    for _ in range(50):
        imp = np.round(rng.random(rng.integers(20, 200)), 1)  # many ties
        fmr = float(rng.choice([0.05, 0.1, 0.2, 0.5]))
        t = threshold_at_fmr(imp, fmr)
        assert fmr_of(imp, t) <= fmr < fmr_of(imp, np.nextafter(t, -np.inf))


def test_threshold_with_too_few_impostors_warns_and_lies_above_all():
    imp = np.linspace(0, 0.5, 50)
    with pytest.warns(UserWarning, match="cannot be resolved"):
        t = threshold_at_fmr(imp, 1e-3)
    assert t > 0.5 and fmr_of(imp, t) == 0
    with pytest.raises(ValueError):
        threshold_at_fmr(imp, 0)


def test_pair_quality_is_the_lower():
    assert pair_quality([0.2, 0.9, 0.5], [0.4, 0.1, 0.5]).tolist() == [0.2, 0.1, 0.5]


def test_fixed_curve_known_answer():
    c = erc_curve(G, GQ, IMP, 0.1, [0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert c.fnmr == pytest.approx(EXPECTED, abs=1e-12)
    assert c.effective == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert np.all(c.threshold == threshold_at_fmr(IMP, 0.1)) and 0.4 < c.threshold[0] < 0.45
    assert c.at(0.2) == pytest.approx(0.25)
    steps = erc_curve(G, GQ, IMP, 0.1)  # every discard level
    assert steps.effective == pytest.approx(np.arange(10) / 10)
    assert steps.fnmr[:6] == pytest.approx(EXPECTED, abs=1e-12) and np.all(steps.fnmr[4:] == 0)


def test_tied_qualities_are_discarded_together():
    gq = GQ.copy()
    gq[[0, 8, 5]] = 0.1  # the three lowest now tie
    c = erc_curve(G, gq, IMP, 0.1, [0.0, 0.05, 0.1, 0.3, 0.31])
    assert c.effective == pytest.approx([0, 0.3, 0.3, 0.3, 0.4])
    assert c.fnmr == pytest.approx([0.3, 1 / 7, 1 / 7, 1 / 7, 0.0])
    # the order of tied pairs in the input does not matter
    perm = np.random.default_rng(1).permutation(10)
    assert erc_curve(G[perm], gq[perm], IMP, 0.1, c.fractions).fnmr == pytest.approx(c.fnmr)


def test_everything_discarded_gives_nan():
    c = erc_curve(G, GQ, IMP, 0.1, [1.0])
    assert math.isnan(c.fnmr[0]) and c.effective[0] == 1.0


def test_pauc_of_step_curves():
    assert pauc([0, 0.05, 0.1], [0.4, 0.2, 0.1], 0.2) == pytest.approx((0.4 * 0.05 + 0.2 * 0.05 + 0.1 * 0.1) / 0.08)
    assert pauc([0, 0.1, 0.3], [0.5, 0.5, 0.0], 0.2) == pytest.approx(1.0)  # the point beyond the limit is unused
    assert pauc([0, 0.1, 0.1, 0.2], [0.4, 0.2, 0.2, 0.0], 0.2) == pytest.approx(0.75)  # repeated fractions
    assert math.isnan(pauc([0, 0.1], [0.0, 0.0], 0.2))
    steps = erc_curve(G, GQ, IMP, 0.1)
    assert pauc(steps.effective, steps.fnmr, 0.2) == pytest.approx((0.3 + 2 / 9) * 0.1 / (0.2 * 0.3))
    with pytest.raises(ValueError):
        pauc([0.1, 0.2], [0.3, 0.2])


def _scores(n_gen=300, n_imp=5000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.55, 0.15, n_gen), rng.normal(0.1, 0.1, n_imp)


def test_oracle_reaches_zero_at_the_fnmr():
    g, imp = _scores()
    t = threshold_at_fmr(imp, 1e-3)
    fnmr0 = np.mean(g < t)
    errors = int(np.sum(g < t))
    assert 0.05 < fnmr0 < 0.5
    c = oracle_curve(g, imp, 1e-3, [0, (errors - 1) / g.size, errors / g.size])
    assert c.fnmr[0] == pytest.approx(fnmr0) and c.fnmr[1] > 0 and c.fnmr[2] == 0
    steps = oracle_curve(g, imp, 1e-3)
    assert np.all(np.diff(steps.fnmr[:errors + 1]) < 0) and np.all(steps.fnmr[errors:] == 0)


def test_random_rejection_is_flat_in_expectation():
    g, imp = _scores()
    fnmr0 = np.mean(g < threshold_at_fmr(imp, 1e-3))
    c = random_rejection_curve(g, imp, 1e-3, np.linspace(0, 0.5, 11), seed=3, draws=400)
    assert np.abs(c.fnmr - fnmr0).max() < 0.01
    assert pauc(c.effective, c.fnmr, 0.2) == pytest.approx(1.0, abs=0.03)
    # the mean of the draws as each is drawn from the seed (summed as they come, not held), on the exact step curve
    rng, few = np.random.default_rng(3), random_rejection_curve(g, imp, 1e-3, None, seed=3, draws=3)
    draws = [erc_curve(g, rng.random(g.size), imp, 1e-3, None, rng.random(imp.size)) for _ in range(3)]
    assert np.array_equal(few.fnmr, np.mean([d.fnmr for d in draws], 0), equal_nan=True)
    assert np.array_equal(few.effective, draws[0].effective)
    with pytest.raises(ValueError, match="draws must be ≥ 1"):
        random_rejection_curve(g, imp, 1e-3, draws=0)
    # a quality that tracks the score beats it, and the oracle beats that
    q = g + np.random.default_rng(4).normal(0, 0.1, g.size)
    good = erc_curve(g, q, imp, 1e-3)
    oracle = oracle_curve(g, imp, 1e-3)
    assert pauc(oracle.effective, oracle.fnmr) < pauc(good.effective, good.fnmr) < 0.9


def test_recompute_convention_lowers_the_threshold_when_high_impostors_go():
    imp = np.concatenate([np.linspace(0, 0.3, 90), np.linspace(0.60, 0.69, 10)])
    iq = np.concatenate([np.full(90, 0.9), np.full(10, 0.05)])
    g, gq = np.repeat([0.5, 0.9], 5), np.linspace(0.9, 0.99, 10)
    frac = [0, 10 / 110]
    fixed = erc_curve(g, gq, imp, 0.05, frac)
    rec = erc_curve(g, gq, imp, 0.05, frac, iq, convention="recompute")
    assert fixed.fnmr[0] == rec.fnmr[0] == 0.5 and rec.threshold[0] == fixed.threshold[0] > 0.64
    assert rec.fnmr[1] == 0 and rec.threshold[1] < 0.31 and rec.effective[1] == pytest.approx(10 / 110)
    assert fixed.fnmr[1] > 0.4  # the fixed threshold keeps failing the 0.5 genuine scores
    with pytest.raises(ValueError, match="impostor_quality"):
        erc_curve(g, gq, imp, 0.05, frac, convention="recompute")


def _recompute_reference(g, gq, imp, iq, fmr, k):
    """CR-FIQA's loop: drop the k lowest-quality pairs, threshold at FMR from the rest by counting."""
    s, q, gen = np.concatenate([g, imp]), np.concatenate([gq, iq]), np.arange(g.size + imp.size) < g.size
    keep = np.argsort(q)[k:]
    kg, ki = s[keep][gen[keep]], np.sort(s[keep][~gen[keep]])[::-1]
    allowed = int(fmr * ki.size + 1e-9)
    t = np.nextafter(ki[allowed], np.inf)
    return np.mean(kg < t)


def test_recompute_matches_a_direct_implementation_without_ties():
    rng = np.random.default_rng(5)
    g, imp = _scores(80, 900, 5)
    gq, iq = rng.random(g.size), rng.random(imp.size)
    ks = [0, 49, 98, 245, 490]
    c = erc_curve(g, gq, imp, 0.01, np.array(ks) / (g.size + imp.size), iq, convention="recompute")
    assert c.fnmr == pytest.approx([_recompute_reference(g, gq, imp, iq, 0.01, k) for k in ks])


def test_ece_of_calibrated_and_miscalibrated_sets():
    q = np.repeat((np.arange(10) + 0.5) / 10, 20)  # bin b holds 20 pairs of quality (b + 0.5)/10 ...
    matched = np.concatenate([np.arange(20) < round(20 * (b + 0.5) / 10) for b in range(10)])  # ... matching as often
    assert expected_calibration_error(q, matched) == pytest.approx(0, abs=1e-12)
    assert expected_calibration_error(np.full(50, 0.95), np.zeros(50, bool)) == pytest.approx(0.95)
    # two bins: 0.9 matching half the time (gap 0.4, weight 3/4), 0.1 never (gap 0.1, weight 1/4)
    q2 = np.array([0.9] * 6 + [0.1] * 2)
    m2 = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    assert expected_calibration_error(q2, m2) == pytest.approx(0.75 * 0.4 + 0.25 * 0.1)
    assert expected_calibration_error(np.array([1.0]), np.array([True])) == 0  # 1.0 falls in the last bin
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([1.5]), np.array([True]))


def test_evaluate_rows_and_round_trip(tmp_path):
    g, imp = _scores(200, 3000, 7)
    rng = np.random.default_rng(8)
    scores = np.concatenate([g, imp])
    genuine = np.arange(scores.size) < g.size
    q = {"good": scores * genuine + rng.normal(0, 0.15, scores.size), "noise": rng.random(scores.size)}
    cal = {"good": 1 / (1 + np.exp(-10 * (q["good"] - 0.3)))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 3000 impostors resolve FMR 1e-3
        results = evaluate_erc(scores, genuine, q, 1e-3, "fixed", cal, seed=1)
    assert [r.method for r in results] == ["good", "noise", "random", "oracle"]
    by = {r.method: r for r in results}
    assert by["oracle"].pauc[0.2] < by["good"].pauc[0.2] < by["noise"].pauc[0.2]
    assert 0 <= by["good"].ece <= 1 and math.isnan(by["noise"].ece) and math.isnan(by["random"].ece)
    rows, summary = erc_rows(results), summary_rows(results)
    assert len(rows) == 4 * 51 and set(rows[0]) == set(ERC_COLUMNS) and set(summary[0]) == set(SUMMARY_COLUMNS)
    assert {r["convention"] for r in summary} == {"fixed"} and summary[0]["genuine"] == 200
    atomic_save_csv(tmp_path / "erc.csv", rows, ERC_COLUMNS)
    atomic_save_csv(tmp_path / "summary.csv", summary, SUMMARY_COLUMNS)
    back = read_results(tmp_path)
    assert [r.method for r in back] == [r.method for r in results]
    assert back[0].curve.fnmr == pytest.approx(results[0].curve.fnmr, rel=1e-5)
    assert back[0].pauc[0.2] == pytest.approx(results[0].pauc[0.2], rel=1e-5)
    fig = erc_plotly(back)
    assert len(fig.data) == 4 and CONVENTIONS["fixed"] in fig.layout.title.text
    rec = evaluate_erc(scores, genuine, q, 1e-3, "recompute", cal, seed=1)
    assert rec[0].curve.at(0) == pytest.approx(results[0].curve.at(0))  # same start, other convention
    assert {r.convention for r in rec} == {"recompute"}


def test_no_error_to_remove_is_said_not_drawn_as_nan():
    """When every genuine pair matches there is nothing for quality to remove: the figures say so instead of
    labelling each curve "pAUC nan" (the notebook explorer with few people gives that case)."""
    from plqa_nb.evaluation.plots import erc_figure

    g = np.full(20, 0.99)
    scores, genuine = np.concatenate([g, IMP]), np.arange(30) < 20
    results = evaluate_erc(scores, genuine, {"q": np.linspace(0, 1, 30)}, 0.1, "fixed", seed=0)
    assert results[0].curve.at(0) == 0 and math.isnan(results[0].pauc[0.2])
    fig = erc_plotly(results)
    assert "nothing for quality to remove" in fig.layout.title.text and "<br>" in fig.layout.title.text
    assert all("undefined" in t.name and "nan" not in t.name for t in fig.data)
    png = erc_figure(results)
    assert "nothing for quality to remove" in png.axes[0].get_title() and png.axes[0].get_ylim() == (0, 1)
    fine = evaluate_erc(np.concatenate([G, IMP]), np.arange(20) < 10, {"q": np.concatenate([GQ, np.ones(10)])}, 0.1)
    assert "nothing" not in erc_plotly(fine).layout.title.text and "undefined" not in fine[0].label


def _touch_dataset(root, sizes):
    for k, n in enumerate(sizes):
        for j in range(n):
            (root / f"id{k}").mkdir(parents=True, exist_ok=True)
            (root / f"id{k}" / f"{j}.jpg").write_bytes(b"")
    return root


def test_folder_pairs_all_and_sampled(tmp_path):
    from plqa_nb.evaluation.pairs import folder_pairs

    root = _touch_dataset(tmp_path, [2, 3, 1])
    p = folder_pairs(root)
    ids = np.array(p.identities)
    assert len(p.rel) == 6 and p.genuine.sum() == 1 + 3 and (~p.genuine).sum() == (36 - 4 - 9 - 1) // 2
    assert np.all((ids[p.a] == ids[p.b]) == p.genuine) and np.all(p.a < p.b)
    assert len({(a, b) for a, b in zip(p.a, p.b)}) == p.a.size and p.selection == "all 11 cross-identity pairs"
    s = folder_pairs(root, max_impostors=5, seed=3)
    imp = {(a, b) for a, b, g in zip(s.a, s.b, s.genuine) if not g}
    assert len(imp) == 5 and all(ids[a] != ids[b] and a < b for a, b in imp) and s.genuine.sum() == 4
    assert "5 of 11" in s.selection and "seed 3" in s.selection
    again = folder_pairs(root, max_impostors=5, seed=3)
    assert np.array_equal(again.a, s.a) and np.array_equal(again.b, s.b)
    (root / "loose.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="outside identity subfolders"):
        folder_pairs(root)


def test_sampled_impostors_are_uniform(tmp_path):
    from plqa_nb.evaluation.pairs import folder_pairs

    root = _touch_dataset(tmp_path, [1] * 10)  # 45 impostor pairs, 20 drawn per seed
    counts = np.zeros((10, 10))
    for seed in range(200):
        p = folder_pairs(root, max_impostors=20, seed=seed)
        np.add.at(counts, (p.a, p.b), 1)
    drawn = counts[np.triu_indices(10, 1)]
    assert drawn.sum() == 200 * 20 and np.abs(drawn / 200 - 20 / 45).max() < 0.15


def test_listed_pairs_and_their_errors(tmp_path):
    from plqa_nb.evaluation.pairs import listed_pairs

    root = _touch_dataset(tmp_path / "d", [2, 1])
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("a,b,same\nid0/0.jpg,id0/1.jpg,1\nid0/0.jpg,id1/0.jpg,0\n")
    p = listed_pairs(root, csv_path)
    assert p.rel == ["id0/0.jpg", "id0/1.jpg", "id1/0.jpg"] and p.genuine.tolist() == [True, False]
    assert p.a.tolist() == [0, 0] and p.b.tolist() == [1, 2] and p.identities == ["id0", "id0", "id1"]
    for body, message in [("id0/0.jpg,../x.jpg,1", "line 2: column b"), ("id0/0.jpg,id0/1.jpg,2", "line 2: same"),
                          ("id0/0.jpg,id9/1.jpg,1", "line 2: .*not found")]:
        csv_path.write_text(f"a,b,same\n{body}\n")
        with pytest.raises(ValueError, match=message):
            listed_pairs(root, csv_path)
    csv_path.write_text("a,b,same\n")
    with pytest.raises(ValueError, match="no pairs"):
        listed_pairs(root, csv_path)


def test_cosine_scores_of_pairs():
    from plqa_nb.evaluation.pairs import cosine_scores

    e = np.array([[3.0, 0], [0, 2], [1, 1]])
    assert cosine_scores(e, np.array([0, 0, 2]), np.array([1, 2, 2]), chunk=2) == pytest.approx(
        [0, 1 / np.sqrt(2), 1])
