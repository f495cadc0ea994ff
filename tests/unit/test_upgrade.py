"""Checkpoints written before the data settings were grouped still load."""

from speakerid.inference import upgraded_config


def test_flat_data_keys_of_old_checkpoints_move_into_their_groups() -> None:
    old = {
        "data": {
            "batch_size": 64,
            "eval_batch_size": 1,
            "eval_max_seconds": None,
            "eval_crops": 3,
            "eval_crop_seconds": 4.0,
            "shards": None,
            "shard_mode": "epoch",
            "shard_buffer": 1000,
        },
        "system": {"x": 1},
    }
    new = upgraded_config(old)
    assert new["data"] == {
        "batch_size": 64,
        "eval": {"batch_size": 1, "max_seconds": None, "crops": 3, "crop_seconds": 4.0},
        "shards": {"dir": None, "mode": "epoch", "buffer": 1000},
    }
    assert new["system"] == old["system"] and "eval_crops" in old["data"]  # a copy
    assert upgraded_config(new) == new  # today's layout is left alone
