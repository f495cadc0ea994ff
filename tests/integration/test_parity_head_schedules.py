"""The AAM head and the WeSpeaker schedules against WeSpeaker's own code (commit dfa7419, loaded
by tests/references.py), each recipe composed as a user runs it.

- Head: WeSpeaker's ``ArcMarginProduct`` with its weights copied into ours: the margin logits,
  the cross-entropy and its gradients agree, with and without ``easy_margin``, at margins from 0
  to the LM stage's 0.5 set one after another (``update`` / ``set_margin``), on embeddings that
  reach the branch past ``theta + margin = pi`` where ArcFace's and WeSpeaker's heads differ.
- Schedules: the learning rate and the margin at every step of each recipe's 150 (LM: 5) epochs,
  ours built from the composed config as training builds them, WeSpeaker's built and stepped as
  its ``train.py`` and ``executor.py`` do (``step(cur_iter)`` before each batch); once with a
  small ``epoch_iter`` through the torch scheduler and the callback hooks, once at the VoxCeleb2
  recipe's own ``epoch_iter``.
"""

import functools
import types

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tests.conftest import compose_config
from tests.references import wespeaker

from speakerid.systems import schedules

VOX2_DEV_UTTERANCES = 1_092_009  # WeSpeaker's train.py: epoch_iter = utterances // gpus // batch
FIRST_STAGE = {
    "num_epochs": 150, "batch_size": 128, "gpus": 2,
    "initial_lr": 0.1, "final_lr": 5e-5, "warm_up_epoch": 6, "warm_from_zero": True,
    "initial_margin": 0.0, "final_margin": 0.2, "increase_start_epoch": 20,
    "fix_start_epoch": 40, "increase_type": "exp", "scale": 32.0, "easy_margin": False,
}  # fmt: skip
LM_STAGE = {
    **FIRST_STAGE, "num_epochs": 5, "batch_size": 64,
    "initial_lr": 1e-4, "final_lr": 2.5e-5, "warm_up_epoch": 1,
    "initial_margin": 0.5, "final_margin": 0.5, "increase_start_epoch": 1, "fix_start_epoch": 1,
}  # fmt: skip
# examples/voxceleb/v2/conf/{resnet,ecapa_tdnn}{,_lm}.yaml at dfa7419: the values that matter here
WESPEAKER = {
    "wespeaker_resnet34": FIRST_STAGE,
    "wespeaker_ecapa512": FIRST_STAGE,
    "wespeaker_resnet34_lm": LM_STAGE,
    "wespeaker_ecapa512_lm": LM_STAGE,
}
MARGINS = (0.0, 0.2, 0.05, 0.35, 0.5, 0.3)  # set one after another on the same heads


@functools.cache
def _recipe(name: str) -> DictConfig:
    """The recipe as a user composes it (docs/recipes.md's "Composed" lines); read only."""
    lm = ["init_from=averaged.ckpt"] if name.endswith("_lm") else []
    return compose_config("train", [f"experiment={name}", "data=voxceleb2", *lm])


def _heads(cfg: DictConfig, easy_margin: bool, seed: int = 0) -> tuple:
    """WeSpeaker's ArcMarginProduct built as its ``get_projection`` does, and ours from the
    recipe's loss config, holding the same weights."""
    torch.manual_seed(seed)
    projections = wespeaker("models.projections")
    ref = projections.ArcMarginProduct(
        16, 10, scale=FIRST_STAGE["scale"], margin=0.0, easy_margin=easy_margin
    )
    ours = instantiate(cfg.loss, embed_dim=16, num_speakers=10, easy_margin=easy_margin)
    with torch.no_grad():
        ours.weight.copy_(ref.weight)
    return ref, ours


def _inputs(ref: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Random embeddings, and embeddings near the opposite of their class's weight (theta near
    pi, past pi - margin: the fallback branch), near orthogonal to it (easy margin's edge)."""
    labels = torch.arange(24) % 10
    weight = ref.weight.detach()
    opposite = -weight[labels[:8]] + 0.05 * torch.randn(8, 16)
    orthogonal = torch.randn(8, 16)
    w = torch.nn.functional.normalize(weight[labels[16:]])
    orthogonal -= (orthogonal * w).sum(1, keepdim=True) * w
    orthogonal += 0.01 * torch.randn(8, 16)
    return torch.cat([opposite, torch.randn(8, 16), orthogonal]), labels


def _relative(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach(), ref.detach()
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("easy_margin", [False, True])
def test_aam_head_equals_wespeakers_arc_margin_product(easy_margin: bool) -> None:
    ref, ours = _heads(_recipe("wespeaker_resnet34"), easy_margin)
    x, y = _inputs(ref)
    for margin in MARGINS:
        ref.update(margin)
        ours.set_margin(margin)
        xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
        ref_logits = ref(xr, y)
        ref_loss = torch.nn.CrossEntropyLoss()(ref_logits, y)  # the recipes' loss
        ref_loss.backward()
        out = ours(xo, y)
        out.loss.backward()
        assert _relative(ours.margin_logits(x, y), ref_logits.detach()) <= 1e-6, margin
        assert abs(out.loss.item() / ref_loss.item() - 1) <= 1e-6, margin
        assert _relative(xo.grad, xr.grad) <= 1e-6, margin
        assert _relative(ours.weight.grad, ref.weight.grad) <= 1e-6, margin
        ref.weight.grad = ours.weight.grad = None


def test_the_inputs_reach_the_fallback_and_arcfaces_fallback_differs() -> None:
    """The default head (ArcFace's shift ``m sin m`` past pi - m) is not WeSpeaker's there, and
    the inputs above do reach that branch: so the parity test can fail."""
    ref, ours = _heads(compose_config("train", []), easy_margin=False)
    assert ours.fallback == "arcface"
    x, y = _inputs(ref)
    ref.update(0.5)
    ours.set_margin(0.5)
    true_cosine = ours.cosine(x)[torch.arange(len(y)), y]
    assert (true_cosine <= ref.th).sum() >= 4 and (true_cosine > ref.th).sum() >= 4
    assert _relative(ours.margin_logits(x, y), ref(x, y).detach()) > 1e-3


def test_an_embedding_on_its_class_weight_keeps_finite_gradients() -> None:
    """Embeddings along (and opposite) their class's weight, where |cos| rounds to 1 or past it:
    WeSpeaker's ``sqrt(1 - cos^2)`` is NaN past 1 and its gradient infinite at 1; ours takes the
    sine as 0 there, equal to WeSpeaker's wherever that is finite, with finite gradients."""
    ref, ours = _heads(_recipe("wespeaker_resnet34"), easy_margin=False)
    ref.update(0.2)
    ours.set_margin(0.2)
    y = torch.arange(10).repeat(2)
    x = torch.cat([3 * ref.weight.detach(), -3 * ref.weight.detach()]).requires_grad_()
    theirs = ref(x, y).detach()
    finite = theirs.isfinite()
    assert _relative(ours.margin_logits(x, y)[finite], theirs[finite]) <= 1e-6
    ours(x, y).loss.backward()
    assert x.grad.isfinite().all() and ours.weight.grad.isfinite().all()


def _our_rates(cfg: DictConfig, epoch_iter: int, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """Our rate before each optimizer step, stepped as Lightning steps a per-step scheduler,
    on one of the recipe's ranks (``_world_size`` is the recipe's device count)."""
    monkeypatch.setattr(schedules, "_world_size", lambda: cfg.trainer.devices)
    optimizer = instantiate(cfg.optimizer)([torch.zeros(1, requires_grad=True)])
    total = cfg.trainer.max_epochs * epoch_iter  # Lightning's estimated_stepping_batches
    scheduler = instantiate(cfg.scheduler)(optimizer, total)["scheduler"]
    rates = np.empty(total)
    for step in range(total):
        rates[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
    return rates


def _their_rates(recipe: dict, epoch_iter: int) -> np.ndarray:
    """WeSpeaker's rate: ``ExponentialDecrease`` as train.py builds it, ``step(cur_iter)``
    before each batch as executor.py calls it."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe["initial_lr"])
    scheduler = wespeaker("utils.schedulers").ExponentialDecrease(
        optimizer, recipe["num_epochs"], epoch_iter, recipe["initial_lr"], recipe["final_lr"],
        recipe["warm_up_epoch"], 1.0 * recipe["gpus"] * recipe["batch_size"] / 64,
        recipe["warm_from_zero"],
    )  # fmt: skip
    rates = np.empty(recipe["num_epochs"] * epoch_iter)
    for cur_iter in range(len(rates)):
        scheduler.step(cur_iter)
        rates[cur_iter] = optimizer.param_groups[0]["lr"]
    return rates


def _assert_same(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    """Value for value: relative 1e-9, and exactly where WeSpeaker's is 0."""
    assert ours.shape == theirs.shape, what
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0, err_msg=what)


@pytest.mark.parametrize("recipe", sorted(WESPEAKER))
def test_learning_rate_at_every_step(recipe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, epoch_iter = _recipe(recipe), 37
    assert cfg.trainer.get("accumulate_grad_batches", 1) == 1  # one optimizer step per batch
    ours, theirs = _our_rates(cfg, epoch_iter, monkeypatch), _their_rates(WESPEAKER[recipe], 37)
    _assert_same(ours, theirs, recipe)
    warm = WESPEAKER[recipe]["warm_up_epoch"] * epoch_iter  # the peak: 2 x 128 / 64 x 0.1
    assert theirs[0] == 0 and theirs.argmax() == warm


def _our_margins(
    cfg: DictConfig, epoch_iter: int, head: torch.nn.Module | None = None, after_step=None
) -> np.ndarray:
    """Our margin at each step, set through the recipe's callback's hooks on the recipe's head
    (or ``head``); ``after_step(step, head)`` runs after each."""
    head = head if head is not None else instantiate(cfg.loss, embed_dim=4, num_speakers=3)
    epochs = cfg.trainer.max_epochs
    trainer = types.SimpleNamespace(
        max_epochs=epochs, estimated_stepping_batches=epochs * epoch_iter, global_step=0
    )  # what the callback reads of Lightning's Trainer
    system, callback = types.SimpleNamespace(loss=head), instantiate(cfg.callbacks.margin_schedule)
    callback.on_fit_start(trainer, system)
    margins = np.empty(epochs * epoch_iter)
    for step in range(len(margins)):
        trainer.global_step = step
        callback.on_train_batch_start(trainer, system, None, step % epoch_iter)
        margins[step] = head.margin
        if after_step:
            after_step(step, head)
    return margins


def _their_schedule(recipe: dict, epoch_iter: int, projection: object) -> object:
    """WeSpeaker's MarginScheduler as train.py builds it, over ``projection``."""
    keys = ("increase_start_epoch", "fix_start_epoch", "initial_margin", "final_margin")
    return wespeaker("utils.schedulers").MarginScheduler(
        model=types.SimpleNamespace(projection=projection),
        epoch_iter=epoch_iter,
        **{key: recipe[key] for key in keys},
        update_margin=True,
        increase_type=recipe["increase_type"],
    )


def _their_margins(recipe: dict, epoch_iter: int, projection: object) -> np.ndarray:
    """WeSpeaker's margin at each step, ``step(cur_iter)`` before each batch."""
    schedule = _their_schedule(recipe, epoch_iter, projection)
    margins = np.empty(recipe["num_epochs"] * epoch_iter)
    for cur_iter in range(len(margins)):
        schedule.step(cur_iter)
        margins[cur_iter] = schedule.get_margin()
    return margins


@pytest.mark.parametrize("recipe", sorted(WESPEAKER))
def test_margin_at_every_step(recipe: str) -> None:
    """Both schedules drive their heads in step; at each step the margin, the constants it sets
    (cos m, sin m, th, the fallback shift) and, every epoch, the logits agree."""
    cfg, epoch_iter = _recipe(recipe), 37
    ref, ours = _heads(cfg, easy_margin=False)
    x, y = _inputs(ref)
    schedule = _their_schedule(WESPEAKER[recipe], epoch_iter, ref)
    theirs, constants = [], []

    def compare(step: int, head: torch.nn.Module) -> None:
        schedule.step(step)
        theirs.append(schedule.get_margin())
        fn = head.margin_fn
        constants.append(
            ((fn.cos_m, fn.sin_m, fn.th, fn.shift), (ref.cos_m, ref.sin_m, ref.th, ref.mmm))
        )
        if step % epoch_iter == 0:
            assert _relative(head.margin_logits(x, y), ref(x, y).detach()) <= 1e-6, step

    margins = _our_margins(cfg, epoch_iter, ours, compare)
    ours_constants, their_constants = np.array(constants).transpose(1, 0, 2)
    np.testing.assert_allclose(ours_constants, their_constants, rtol=1e-9, atol=1e-15)
    _assert_same(margins, np.array(theirs), recipe)
    assert theirs[-1] == WESPEAKER[recipe]["final_margin"]
    if WESPEAKER[recipe]["fix_start_epoch"] > 1:  # the first stage rises through the values
        assert len(np.unique(margins)) > 20 * epoch_iter * 0.9


def _projection() -> object:
    """An object with WeSpeaker's ``ArcMarginProduct.update`` (its code, unchanged) but without
    nn.Module's slow ``__setattr__``, for the 640,000-step runs."""
    update = wespeaker("models.projections").ArcMarginProduct.update
    return type("Projection", (), {"update": update, "margin": 0.0})()


def _plain_head(cfg: DictConfig) -> object:
    """Likewise our recipe's head: its ``set_margin`` (our code, unchanged) and settings on an
    object without nn.Module's ``__setattr__``."""
    loss = instantiate(cfg.loss, embed_dim=4, num_speakers=3)
    head = type("Head", (), {"set_margin": type(loss).set_margin})()
    for key in ("scale", "easy_margin", "fallback", "margin"):
        setattr(head, key, getattr(loss, key))
    return head


def _our_rates_at(cfg: DictConfig, total: int) -> np.ndarray:
    """Our rate at each step as LambdaLR sets it (base rate x the schedule's factor), without
    stepping torch's scheduler 640,000 times."""
    base = cfg.optimizer.lr
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    factor = instantiate(cfg.scheduler)(optimizer, total)["scheduler"].lr_lambdas[0]
    return np.array([base * factor(step) for step in range(total)])


@pytest.mark.parametrize("recipe", ["wespeaker_resnet34", "wespeaker_resnet34_lm"])
def test_schedules_at_voxceleb2_size(recipe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the recipe's own epoch_iter (VoxCeleb2 dev over 2 GPUs: 4,265 batches of 128; LM:
    8,531 of 64): 639,750 and 42,655 steps. The ECAPA recipes' schedules are the same values."""
    theirs = WESPEAKER[recipe]
    epoch_iter = VOX2_DEV_UTTERANCES // theirs["gpus"] // theirs["batch_size"]
    cfg = _recipe(recipe)
    assert cfg.data.batch_size == theirs["batch_size"] and cfg.trainer.devices == theirs["gpus"]
    monkeypatch.setattr(schedules, "_world_size", lambda: cfg.trainer.devices)
    total = cfg.trainer.max_epochs * epoch_iter
    reference = wespeaker("utils.schedulers").ExponentialDecrease(
        None, theirs["num_epochs"], epoch_iter, theirs["initial_lr"], theirs["final_lr"],
        theirs["warm_up_epoch"], theirs["gpus"] * theirs["batch_size"] / 64,
        theirs["warm_from_zero"],
    )  # fmt: skip
    rates = np.array([reference.step_return_lr(step) for step in range(total)])
    _assert_same(_our_rates_at(cfg, total), rates, "lr")
    margins = _their_margins(theirs, epoch_iter, _projection())
    _assert_same(_our_margins(cfg, epoch_iter, _plain_head(cfg)), margins, "margin")
