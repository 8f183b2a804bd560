"""sample_models.groups: the shipped members match their manifest and a live retrain, and the
recipes do what they say (label shuffles, the shortcut patch, the groups of each test)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from safetensors import safe_open

import sample_models
from sample_models import groups
from cka_core.measures import linear_cka


def test_every_member_ships_in_float16_and_matches_its_manifest_digest():
    manifest = groups.manifest()
    assert set(manifest) == set(groups.MEMBERS)
    total = 0
    for name in groups.MEMBERS:
        path = groups.GROUPS_DIR / f"{name}.safetensors"
        data = path.read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == manifest[name]["sha256"], name
        with safe_open(str(path), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert total + (groups.GROUPS_DIR / "manifest.json").stat().st_size <= 4 * 2**20


def test_group_sizes_follow_resi():
    g = groups.GROUPS
    assert len(g["seed"]["base"]) >= 10
    for kind in ("labels", "shortcut", "noise"):
        assert len(g[kind]) >= 3 and all(len(members) >= 3 for members in g[kind].values())
    assert list(g["labels"]) == ["0%", "25%", "50%", "75%", "100%"]
    assert all(groups.MEMBERS[n].depth == groups.DEEP_DEPTH for n in g["deep"]["deep"])


def test_accuracies_follow_the_recipes():
    acc = {n: e["test_accuracy"] for n, e in groups.manifest().items()}
    assert min(acc[f"base_s{s}"] for s in groups.BASE_SEEDS) > 0.93
    assert max(acc[f"labels100_s{s}"] for s in groups.GROUP_SEEDS) < 0.3  # nothing left to learn from
    # Trained on a patch that always tells the label, tested on a random patch: it leaned on the patch.
    assert max(acc[f"shortcut100_s{s}"] for s in groups.GROUP_SEEDS) < min(acc[f"shortcut0_s{s}"] for s in
                                                                             groups.GROUP_SEEDS) - 0.15


def test_label_shuffle_keeps_class_counts_and_replaces_the_share_asked():
    y = sample_models.digits().y_train
    _, shuffled = groups._training_set(groups.MEMBERS["labels50_s1"])
    assert np.array_equal(np.bincount(shuffled), np.bincount(y))
    changed = np.mean(shuffled != y)
    assert 0.4 < changed <= 0.5  # half chosen; some keep their label by chance


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_the_patch_shows_the_label_at_its_rate_in_training_and_at_random_on_test(rate):
    name = f"shortcut{round(100 * rate)}_s0"
    X, y = groups._training_set(groups.MEMBERS[name])
    shown = np.argmax(X[:, list(groups.PATCH_PIXELS)], axis=1)
    assert (X[:, list(groups.PATCH_PIXELS)] == 1).sum(axis=1).min() >= 1
    assert np.mean(shown == y) == pytest.approx(rate + (1 - rate) / 10, abs=0.04)
    test = groups.test_inputs(groups.PATCHED)
    test_shown = np.argmax(test[:, list(groups.PATCH_PIXELS)], axis=1)
    assert np.mean(test_shown == sample_models.digits().y_test) < 0.2


def test_member_data_is_plain_arrays_on_the_test_digits():
    data = groups.member_data("deep_s0")
    assert list(data["layers"]) == [f"hidden{k}" for k in range(1, groups.DEEP_DEPTH + 1)]
    assert data["logits"].shape == (359, 10) and data["labels"].shape == (359,)
    acc = np.mean(data["logits"].argmax(1) == data["labels"])
    assert acc == pytest.approx(groups.manifest()["deep_s0"]["test_accuracy"], abs=1e-6)
    suites = groups.suites(["label_randomization"])
    assert {d["group"] for d in suites["label_randomization"]} == set(groups.GROUPS["labels"])


def test_a_live_retrain_matches_the_shipped_member():
    """Retrain one member from its recipe: its accuracy and its penultimate layer agree with the
    shipped weights (float16, and other CPUs may differ in the last bits, so approximately)."""
    torch.set_num_threads(1)
    model, metrics = groups.train_member(groups.MEMBERS["labels25_s1"])
    assert metrics["test_accuracy"] == pytest.approx(groups.manifest()["labels25_s1"]["test_accuracy"], abs=0.01)
    X = groups.test_inputs(groups.PLAIN)
    live, _ = groups.hidden_and_logits(model, X)
    shipped, _ = groups.hidden_and_logits(groups.load_member("labels25_s1"), X)
    assert linear_cka(live["hidden2"], shipped["hidden2"]) > 0.99


def test_unknown_member_is_refused():
    with pytest.raises(ValueError, match="valid names: base_s0"):
        groups.member_data("nope")
