"""FlatStorage: every parameter, gradient and optimizer-state tensor as views of one buffer."""

from __future__ import annotations

import torch

from data import load_task
from models import NetworkConfig, build_network
from models.flat import FlatStorage
from models.optim import state_keys


def _cat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def test_whole_is_params_grads_then_each_state_nan_until_the_optimizer_makes_it():
    net = build_network(NetworkConfig(2, 1, (3,)), seed=0)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=0.1)
    flat = FlatStorage(list(net.named_parameters()), state_keys(opt))
    n = flat.offsets[-1]
    assert flat.keys == ["exp_avg", "exp_avg_sq"] and flat.whole.shape == (4 * n,)
    assert torch.equal(flat.whole[:n], _cat(params)) and not flat.whole[n : 2 * n].any()
    assert flat.whole[2 * n :].isnan().all()  # no optimizer state yet: what a recorder records as missing
    task = load_task("xor")
    x, t = torch.tensor(task.inputs), torch.tensor(task.targets)
    for _ in range(3):
        flat.zero_grad()
        torch.nn.functional.mse_loss(net(x), t).backward()
        opt.step()
        flat.adopt_state(opt)
        states = [opt.state[p] for p in params]
        want = [_cat(params), _cat(p.grad for p in params)]
        want += [_cat(st[key] for st in states) for key in flat.keys]
        assert torch.equal(flat.whole, torch.cat(want))  # the optimizer updates the views in place
        assert all(
            st["exp_avg"].data_ptr() == flat.states["exp_avg"][a:].data_ptr() for st, a in zip(states, flat.offsets)
        )
