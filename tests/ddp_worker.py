"""Run by tests/test_training.py under torchrun: a few DDP steps on CPU (gloo), then each rank
writes its own weights so the test can check they are identical."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from jeat_core.core.data import procedural
from jeat_core.train.training import fit, make_config

out = Path(sys.argv[1])
method = sys.argv[2] if len(sys.argv) > 2 else "jeat"
cfg = make_config(method, "cpu", max_steps=4, eval_n=0, log_every=2, checkpoint_every=0, channels_last=False)
cfg = cfg.__class__(**{**cfg.__dict__, "optim": cfg.optim.__class__(**{**cfg.optim.__dict__, "batch_size": 16})})
res = fit(cfg, out=out, train_data=procedural(256, seed=0), test_data=procedural(64, seed=1), progress=False,
          device="cpu")
rank = dist.get_rank()
save_file({k: v.contiguous() for k, v in res.state.core.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
torch.save({"buffer": res.state.buffer.data if res.state.buffer is not None else torch.zeros(1),
            "n_sampled": torch.tensor(res.state.buffer.n_sampled if res.state.buffer is not None else 0)},
           out / f"buffer{rank}.pt")
dist.destroy_process_group()
