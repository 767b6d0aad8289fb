"""The LPIPS network built without the lpips package (latentopt.metrics.lpips_network) against the
package itself: same weights, same distances, same gradients, bit for bit."""

import warnings

import lpips as lpips_pkg
import pytest
import torch

from latentopt.metrics import lpips_network as N


def package_network(net: str, random_trunk: bool) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(N.RANDOM_TRUNK_SEED)
            return lpips_pkg.LPIPS(pretrained=True, net=net, pnet_rand=random_trunk, verbose=False).eval()


def ours(net: str, random_trunk: bool) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(N.RANDOM_TRUNK_SEED)
        return N.LPIPSNetwork(net, random_trunk).eval()


def assert_same_network(net: str, random_trunk: bool) -> None:
    ref, mine = package_network(net, random_trunk), ours(net, random_trunk)
    ref_sd, mine_sd = ref.state_dict(), mine.state_dict()
    assert list(ref_sd) == list(mine_sd)
    assert all(torch.equal(ref_sd[k], mine_sd[k]) for k in ref_sd)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 64, 80, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 3, 64, 80, generator=g)).clamp(-1, 1)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    da, db = ref(xa, y), mine(xb, y)
    da.sum().backward()
    db.sum().backward()
    assert da.shape == db.shape == (3, 1, 1, 1)
    assert (da > 1e-3).all()
    assert torch.equal(da, db)
    assert torch.equal(xa.grad, xb.grad)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_random_trunk_is_the_packages_bit_for_bit(net):
    assert_same_network(net, random_trunk=True)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_pretrained_trunk_is_the_packages_bit_for_bit(net):
    if not N.lpips_weight_files(net, False)[0].exists():
        pytest.skip(f"torchvision's {net} checkpoint is not in the torch hub cache")
    assert_same_network(net, random_trunk=False)
