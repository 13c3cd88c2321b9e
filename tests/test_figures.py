"""`jeat figures --smoke` end to end on a throw-away zoo of tiny models (a few training steps each),
so the pipeline is tested before (and independently of) the shipped models."""

import json

import pytest

from jeat_core.figures import make_all, nearest_by_ssim, ssim

FILES = ["fig2_energy_contours", "fig3_delta_energy", "fig4_eq16_vs_eq17", "fig5_noise_generation",
         "fig6_generation_by_model", "fig7_nearest_neighbours"]
TABLES = ["table1_attacks", "table2_fisher", "table3_robustness"]


@pytest.mark.slow
def test_figures_smoke_writes_everything(tiny_zoo, tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    report = make_all(tmp_path, smoke=True, data_root=data_root)
    assert not [k for k, v in report.items() if isinstance(v, str)], report
    for name in FILES:
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000 and (tmp_path / f"{name}.png").is_file()
    for name in TABLES:
        rows = json.loads((tmp_path / f"{name}.json").read_text())["rows"]
        assert rows and (tmp_path / f"{name}.md").is_file()


def test_ssim_known_values():
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(a, a), torch.ones(3), atol=1e-5)
    assert float(ssim(a, torch.rand(3, 3, 32, 32, generator=g)).mean()) < 0.1
    train = (torch.rand(50, 32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
    q = torch.from_numpy(train[[7, 21]]).permute(0, 3, 1, 2).float() / 255
    idx, s = nearest_by_ssim(q, train, k=3, prefilter=10)
    assert idx[:, 0].tolist() == [7, 21] and torch.allclose(s[:, 0], torch.ones(2), atol=1e-5)
