"""Training end to end: fast_dev_run, overfit, train -> checkpoint -> speakerid-eval, CLI errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests.conftest import TINY_MODEL, compose_config, tiny_overrides, tiny_train_config

from speakerid.errors import ConfigError
from speakerid.evaluate import evaluate, load_checkpoint
from speakerid.finetune import initialize
from speakerid.train import train

BIN = Path(sys.executable).parent


def test_fast_dev_run(tiny_train_cfg: DictConfig, monkeypatch) -> None:
    """One step of the default recipe changes the weights, and saves nothing."""
    with open_dict(tiny_train_cfg):
        tiny_train_cfg.trainer.fast_dev_run = True
        tiny_train_cfg.test = False
    fitted = []
    fit = L.Trainer.fit

    def recording_fit(trainer, system, **kwargs):
        before = {k: v.clone() for k, v in system.backbone.state_dict().items()}
        fit(trainer, system, **kwargs)
        fitted.append((before, system.backbone.state_dict()))

    monkeypatch.setattr(L.Trainer, "fit", recording_fit)
    metrics = train(tiny_train_cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    ((before, after),) = fitted
    changed = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(changed) > 10  # every layer's weights moved, not only one
    assert not (Path(tiny_train_cfg.paths.output_dir) / "checkpoints").exists()


def test_unknown_test_checkpoint_fails_before_training(tiny_train_cfg: DictConfig) -> None:
    with open_dict(tiny_train_cfg):
        tiny_train_cfg.test_ckpt = "lastt"
    with pytest.raises(ConfigError, match="test_ckpt must be best, last or averaged, got 'lastt'"):
        train(tiny_train_cfg)


def test_tiny_model_overfits_one_batch(tiny_train_cfg: DictConfig) -> None:
    torch.manual_seed(0)
    system = instantiate(tiny_train_cfg.system)
    datamodule = instantiate(tiny_train_cfg.data, batch_size=5)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    optimizer = torch.optim.Adam(system.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        out = system.loss(system(batch.wav, batch.lengths), batch.labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert (out.logits.argmax(1) == batch.labels).all()


@pytest.mark.slow
def test_all_loggers_at_once_offline(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(
        tiny_data_dir,
        tmp_path,
        "logger=[csv,tensorboard,wandb]",
        "test_ckpt=best",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
    )
    metrics = train(cfg)
    assert 0.0 <= metrics["test/eer"] <= 1.0  # tested the best checkpoint
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "step", "val/eer", "test/eer", "test/min_dcf"} <= set(header)
    scalars = set()
    for events in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        scalars |= set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert {"val/eer", "val/min_dcf", "test/eer"} <= scalars
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (records,) = run.glob("run-*.wandb")
    assert b"test/eer" in records.read_bytes() and b"val/eer" in records.read_bytes()


@pytest.mark.slow
def test_train_checkpoint_eval_round_trip(tiny_train_cfg: DictConfig, tmp_path: Path) -> None:
    with open_dict(tiny_train_cfg):
        tiny_train_cfg.trainer.max_epochs = 2
    metrics = train(tiny_train_cfg)
    assert 0.0 <= metrics["test/eer"] <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["test/eer"] == metrics["test/eer"]
    assert load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")["epoch"] in (0, 1)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"  # the final weights, which the run tested
    assert load_checkpoint(ckpt)["epoch"] == 1
    assert load_checkpoint(ckpt)["speakerid"]["config"]["model"]["backbone"]["channels"] == 16
    env = {**os.environ, "WANDB_MODE": "offline", "CI": "true"}
    run = subprocess.run(
        [
            BIN / "speakerid-eval",
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={tmp_path}/eval",
            "num_workers=0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "eval.json").read_text())
    trial_lines = Path(report["trials"]).read_text().splitlines()
    assert report["num_trials"] == len(trial_lines)
    # same weights, same trials: the standalone evaluation reproduces the run's own test
    assert report["eer"] == pytest.approx(metrics["test/eer"], abs=1e-6)
    assert report["min_dcf_p01"] == pytest.approx(metrics["test/min_dcf"], abs=1e-6)
    assert set(report) >= {
        "eer",
        "min_dcf_p01",
        "min_dcf_p05",
        "threshold",
        "num_trials",
        "checkpoint",
    }


def test_eval_rejects_missing_and_foreign_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checkpoint not found"):
        evaluate(compose_config("eval", [f"ckpt_path={tmp_path}/none.ckpt"]))
    (tmp_path / "junk.ckpt").write_bytes(b"\x00garbage")
    with pytest.raises(ConfigError, match=r"junk\.ckpt: not a loadable checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="not a speakerid checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")


@pytest.mark.slow
def test_cli_reports_a_missing_corpus_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            BIN / "speakerid-train",
            "data=voxceleb",
            "data.augment.steps.1.root=generated",  # else it refuses first, for MUSAN/RIRS
            "data.augment.steps.2.root=generated",
            f"data.corpus.root={tmp_path}/nowhere",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CI": "true"},
    )
    assert run.returncode == 2
    assert f"error: {tmp_path}/nowhere/wav: corpus folder not found" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_each_run_in_a_process_gets_its_own_wandb_run(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    from speakerid.utils.loggers import close_loggers

    ids = []
    for name in ("first", "second"):
        logger = WandbLogger(project="speakerid", save_dir=str(tmp_path / name), offline=True)
        logger.log_metrics({"x": 1.0})
        ids.append(logger.experiment.id)
        close_loggers([logger])
    assert ids[0] != ids[1]
    assert list((tmp_path / "second" / "wandb").glob("offline-run-*"))


def _multirun(tiny_data_dir: Path, tmp_path: Path, *args: str) -> None:
    """``speakerid-train`` as a subprocess on the tiny corpus and model, sweep folder in tmp."""
    overrides = [o for o in tiny_overrides(tiny_data_dir, tmp_path) if "output_dir" not in o]
    overrides += [f"{k}={v}" for k, v in TINY_MODEL.items()]
    run = subprocess.run(
        [
            BIN / "speakerid-train",
            *args,
            "debug=fast_dev_run",
            "callbacks.rich_progress_bar=null",
            f"hydra.sweep.dir={tmp_path}/sweep",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CI": "true", "WANDB_MODE": "offline"},
    )
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow
def test_a_two_run_sweep_writes_each_run_into_its_own_folder(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    _multirun(tiny_data_dir, tmp_path, "-m", "loss.margin=0.1,0.3")
    for job, margin in (("0", "0.1"), ("1", "0.3")):
        folder = tmp_path / "sweep" / job
        assert f"loss.margin={margin}" in (folder / ".hydra" / "overrides.yaml").read_text()
        assert "train/loss" in json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_an_optuna_search_keeps_its_study_in_sqlite(tiny_data_dir: Path, tmp_path: Path) -> None:
    _multirun(
        tiny_data_dir,
        tmp_path,
        "hparams_search=aam_optuna_sqlite",  # sets -m itself
        "hydra.sweeper.n_trials=2",
        "optimized_metric=train/loss",  # fast_dev_run validates one batch only
    )  # the study: paths.log_dir (tmp_path/logs)/optuna.db
    storage = f"sqlite:///{tmp_path}/logs/optuna.db"
    study = optuna.load_study(study_name="aam_margin_scale", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        folder = tmp_path / "sweep" / str(trial.number)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert trial.value == pytest.approx(metrics["train/loss"])
        assert 0.1 <= trial.params["loss.margin"] <= 0.4
        assert trial.params["loss.scale"] in (20, 30, 40)
    assert "best_params" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()


def test_compiled_backbone_trains_and_keeps_its_checkpoint_keys(tiny_train_cfg: DictConfig) -> None:
    with open_dict(tiny_train_cfg):
        tiny_train_cfg.system.compile_backbone = True
        tiny_train_cfg.system.compile_backend = "eager"  # the wiring, without inductor's build time
        tiny_train_cfg.test = False
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    metrics = train(tiny_train_cfg)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # dynamo did compile it
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    out = Path(tiny_train_cfg.paths.output_dir)
    keys = load_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]
    assert not any("_orig_mod" in k for k in keys) and any(k.startswith("backbone.") for k in keys)


def test_two_stage_training_starts_from_the_first_stages_backbone(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    """Deep Speaker's recipe: softmax pre-training, then triplet fine-tuning from its backbone."""
    first = tiny_train_config(tiny_data_dir, tmp_path / "one", "test=false")
    train(first)
    checkpoint = tmp_path / "one" / "checkpoints" / "last.ckpt"
    stage_two = [
        "loss=triplet",
        "sampler=triplet",
        "data.sampler.speakers=2",
        f"init_from={checkpoint}",
        "test=false",
    ]
    second = tiny_train_config(tiny_data_dir, tmp_path / "two", *stage_two)
    system = instantiate(second.system)
    initialize(system, str(checkpoint), "fresh")
    trained = load_checkpoint(checkpoint)["state_dict"]
    for name, value in system.backbone.state_dict().items():
        torch.testing.assert_close(value, trained[f"backbone.{name}"])
    metrics = train(second)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    other = tiny_train_config(tiny_data_dir, tmp_path / "three", "model.backbone.channels=8")
    with pytest.raises(ConfigError, match="its backbone does not fit this one"):
        initialize(instantiate(other.system), str(checkpoint), "fresh")


def test_metadata_labels_reach_a_multitask_head(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(
        tiny_data_dir, tmp_path, "loss=multitask", "data.extra_labels=[gender]", "test=false"
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.labels.shape == (len(batch.wav), 2)
    assert datamodule.label_vocab == {"gender": ["female", "male"]}
    genders = {u.speaker: u.gender for u in datamodule.train_rows}
    for speaker, gender in zip(
        batch.labels[:, 0].tolist(), batch.labels[:, 1].tolist(), strict=True
    ):
        assert ["female", "male"][gender] == genders[datamodule.speakers[speaker]]
    metrics = train(cfg)
    assert 0 <= metrics["train/acc"] <= 1


@pytest.mark.parametrize(
    "head",
    [
        ["loss=ge2e", "sampler=speaker_batches", "data.sampler.speakers=3"],
        ["loss=contrastive_center"],
        [
            "loss=am_softmax",
            "+callbacks.margin_warmup._target_=speakerid.losses.MarginWarmup",
            "+callbacks.margin_warmup.steps=100",
        ],
    ],
    ids=["ge2e", "contrastive_center", "am_softmax_warmup"],
)
def test_heads_train_through_lightning(tiny_data_dir: Path, tmp_path: Path, head) -> None:
    metrics = train(tiny_train_config(tiny_data_dir, tmp_path, "test=false", *head))
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0 <= metrics["val/eer"] <= 1
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    if "loss=contrastive_center" in head:  # the centers' own optimizer stepped every step
        steps = saved["state_dict"]["loss._extra_state"]["center_optimizer"]["state"][0]["step"]
        assert int(steps) == saved["global_step"] > 0
    if "loss=am_softmax" in head:  # the margin ramps with the step
        assert saved["callbacks"]["MarginWarmup"]["target"] == pytest.approx(0.2)
