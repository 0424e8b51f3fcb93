"""Patch whitening against the formula written out in NumPy, and its whitening property."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainlab.patch_whitening as pw
from trainlab.errors import ConfigError
from trainlab.patch_whitening import patch_second_moment, whiten_conv_, whitening_filters


def correlated_images(n: int = 40, size: int = 12, seed: int = 0) -> np.ndarray:
    """Images whose channels and neighbouring pixels are correlated (float64, N, 3, H, W)."""
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.5, 0.7]])
    x = np.einsum("dc,nchw->ndhw", mixing, rng.normal(size=(n, 3, size, size)))
    x = x + 0.6 * np.roll(x, 1, axis=-1) + 0.3 * np.roll(x, 1, axis=-2)  # neighbours correlated
    return x + 0.2  # a non-zero mean: S is the second moment, not the covariance


def numpy_patches(x: np.ndarray, k: int) -> np.ndarray:
    """Every k x k patch, flattened (channel, row, column): (P, C k^2), written with loops."""
    n, c, h, w = x.shape
    rows = []
    for image in range(n):
        for top in range(h - k + 1):
            for left in range(w - k + 1):
                rows.append(x[image, :, top:top + k, left:left + k].reshape(-1))
    return np.array(rows)


def numpy_whitening(x: np.ndarray, k: int, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S, its eigenvalues (decreasing) and W = diag(l + eps)^(-1/2) V^T."""
    p = numpy_patches(x, k)
    s = p.T @ p / len(p)
    eigenvalues, eigenvectors = np.linalg.eigh(s)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    return s, eigenvalues, np.diag(1 / np.sqrt(eigenvalues + eps)) @ eigenvectors.T


@pytest.mark.parametrize("chunk_elements", [1 << 22, 500])  # one chunk; one image at a time
def test_second_moment_matches_numpy(monkeypatch, chunk_elements):
    monkeypatch.setattr(pw, "_CHUNK_ELEMENTS", chunk_elements)
    x = correlated_images()
    for k in (2, 3):
        s, _, _ = numpy_whitening(x, k, 5e-4)
        np.testing.assert_allclose(patch_second_moment(torch.from_numpy(x), (k, k)).numpy(), s, rtol=1e-10)


def test_filters_equal_the_formula_written_in_numpy():
    x = correlated_images()
    eps = 5e-4
    s, _, expected = numpy_whitening(x, 2, eps)
    filters = whitening_filters(torch.from_numpy(s), eps).numpy()
    # eigenvectors are defined up to sign: align each row's sign, then compare
    signs = np.sign(np.sum(filters * expected, axis=1))
    np.testing.assert_allclose(filters * signs[:, None], expected, rtol=1e-7, atol=1e-9)
    # and a sign-free closed form: W^T W = (S + eps I)^-1
    np.testing.assert_allclose(filters.T @ filters, np.linalg.inv(s + eps * np.eye(12)), rtol=1e-7)


def test_whitened_patches_have_identity_second_moment():
    x = correlated_images(n=60)
    images = torch.from_numpy(x).float()
    conv = nn.Conv2d(3, 24, 2)
    eps = 1e-7
    whiten_conv_(conv, images, eps=eps)
    out = F.conv2d(images, conv.weight).double().permute(0, 2, 3, 1).reshape(-1, 24).numpy()  # no bias
    first = out[:, :12]
    np.testing.assert_allclose(first.T @ first / len(first), np.eye(12), atol=2e-4)
    np.testing.assert_allclose(out[:, 12:], -first, atol=1e-6)  # the next d channels: the negation
    # with airbench's eps the second moment is diag(l / (l + eps)), l from NumPy
    eps = 5e-4
    whiten_conv_(conv, images, eps=eps)
    first = F.conv2d(images, conv.weight[:12]).double().permute(0, 2, 3, 1).reshape(-1, 12).numpy()
    _, eigenvalues, _ = numpy_whitening(x, 2, eps)
    np.testing.assert_allclose(first.T @ first / len(first), np.diag(eigenvalues / (eigenvalues + eps)), atol=2e-4)


def test_conv_with_d_outputs_gets_the_filters_only_and_keeps_its_bias():
    x = correlated_images()
    conv = nn.Conv2d(3, 27, 3)
    bias = conv.bias.detach().clone()
    whiten_conv_(conv, torch.from_numpy(x).float(), eps=5e-4)
    _, _, expected = numpy_whitening(x, 3, 5e-4)
    got = conv.weight.detach().double().reshape(27, 27).numpy()
    signs = np.sign(np.sum(got * expected, axis=1))
    np.testing.assert_allclose(got * signs[:, None], expected, rtol=2e-4, atol=1e-5)
    assert torch.equal(conv.bias, bias)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_flag(freeze):
    conv = nn.Conv2d(3, 24, 2)
    before = conv.weight.detach().clone()
    whiten_conv_(conv, torch.from_numpy(correlated_images()).float(), freeze=freeze)
    assert conv.weight.requires_grad is not freeze
    assert conv.bias.requires_grad
    assert not torch.allclose(conv.weight, before)


@pytest.mark.parametrize("conv, images, message", [
    (nn.Conv2d(3, 10, 2), torch.zeros(2, 3, 8, 8), "10 output channels.*needs 12.*or 24"),
    (nn.Conv2d(3, 24, 2, groups=3), torch.zeros(2, 3, 8, 8), "groups=3"),
    (nn.Conv2d(1, 8, 2), torch.zeros(2, 3, 8, 8), "takes 1 channels but the images have 3"),
    (nn.Conv2d(3, 24, 2), torch.zeros(2, 12), r"\(N, C, H, W\)"),
    (nn.Conv2d(3, 24, 2), torch.zeros(2, 3, 1, 1), "smaller than the 2x2 patches"),
])
def test_bad_layers_and_inputs_are_one_line_config_errors(conv, images, message):
    with pytest.raises(ConfigError, match=message) as info:
        whiten_conv_(conv, images)
    assert "\n" not in str(info.value)


def grayscale_as_rgb(n: int = 40, size: int = 12, seed: int = 0) -> np.ndarray:
    """Gray images stored as RGB, then normalised per channel as for CIFAR: every channel is one
    affine function of the gray value, so the 2x2 patches (d = 12) span 4 directions plus the offset."""
    gray = correlated_images(n, size, seed)[:, :1]
    mean, std = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])
    return (np.repeat(gray, 3, axis=1) - mean[:, None, None]) / std[:, None, None]


def test_rank_deficient_patches_get_no_noise_filters():
    x = grayscale_as_rgb()
    patches = numpy_patches(x, 2)
    rank = np.linalg.matrix_rank(patches)  # NumPy's own tolerance, from the singular values
    assert rank == 5  # 4 gray pixels + the per-channel offsets
    eps = 5e-4
    s, eigenvalues, expected = numpy_whitening(x, 2, eps)
    filters = whitening_filters(torch.from_numpy(s), eps).numpy()
    # the r genuine directions: the formula
    signs = np.sign(np.sum(filters[:rank] * expected[:rank], axis=1))
    np.testing.assert_allclose(filters[:rank] * signs[:, None], expected[:rank], rtol=1e-6, atol=1e-8)
    # the null directions repeat them, cyclically
    np.testing.assert_array_equal(filters[rank:], filters[np.arange(12 - rank) % rank])
    # so every channel of a whitening conv responds at whitened scale, the same in float32 and float64
    conv = nn.Conv2d(3, 24, 2, bias=False)
    whiten_conv_(conv, torch.from_numpy(x).float(), eps=eps)
    out32 = conv(torch.from_numpy(x).float()).double()
    out64 = F.conv2d(torch.from_numpy(x), conv.weight.double())
    second_moment = (out64 ** 2).mean(dim=(0, 2, 3)).numpy()
    assert second_moment.min() > 0.5, second_moment  # no channel of pure rounding noise
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), atol=1e-4)


# --------------------------------------------------------------------------- after it in a chain

def _stem_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 2, bias=False), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1), nn.Flatten(),
                         nn.Linear(200, 3))


def _images() -> torch.Tensor:
    return torch.randn(64, 1, 6, 6, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("after", ["kaiming_normal", "dirac", {"name": "normal", "std": 0.1}])
def test_an_initializer_that_overwrites_the_whitened_conv_is_refused(after):
    """`[patch_whitening, kaiming_normal]` left He noise in the stem, frozen, and `[patch_whitening, dirac]` a
    delta in its first filter (the W / -W pairs broken), both without a word."""
    from trainlab.initializers import initialize

    name = after if isinstance(after, str) else after["name"]
    with pytest.raises(ConfigError, match=rf"^strategy.init: '{name}' after patch_whitening overwrites the whitened "
                                          r"conv '0' .*; put patch_whitening after it, last in strategy.init$"):
        initialize(_stem_model(), [{"name": "patch_whitening", "images": 64}, after], _images())


def test_initializers_before_it_or_beside_its_conv_are_kept():
    from trainlab.initializers import PatchWhitening, apply_initializers, build_initializers, initialize

    images = _images()
    filters = whitening_filters(patch_second_moment(images, (2, 2), (1, 1)), 5e-4).reshape(4, 1, 2, 2).float()
    model = _stem_model()
    initialize(model, ["kaiming_normal", "dirac", {"name": "patch_whitening", "images": 64}], images)
    assert torch.allclose(model[0].weight, torch.cat((filters, -filters)))
    assert torch.equal(model[2].weight[0, 0], torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]))  # dirac kept

    class SecondConvOnly(PatchWhitening.__mro__[1]):  # a user's ModelInitializer leaving the stem alone
        def __call__(self, model, images):
            torch.nn.init.zeros_(model[2].weight)

    model = _stem_model()
    apply_initializers([*build_initializers({"name": "patch_whitening", "images": 64}), SecondConvOnly()], model,
                       images)
    assert torch.allclose(model[0].weight, torch.cat((filters, -filters))) and not model[2].weight.any()


class _ProjectedConv(nn.Module):
    """A conv fed a Linear projection of the images, not the images: it must whiten what it receives."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.project, self.conv, self.unused = nn.Linear(36, 36), nn.Conv2d(1, 8, 2), nn.Conv2d(1, 8, 2)

    def forward(self, x):
        z = self.project(x.flatten(1)).view(-1, 1, 6, 6)
        return self.conv(z).flatten(1)


def test_a_conv_after_other_layers_whitens_the_patches_it_receives_and_an_unused_conv_is_refused():
    """The initializer whitened the raw images' patches for a conv fed a projection of them (a diagonal of
    0.03 .. 3.5 where 1 was due); the patches are now the projection's, computed here in NumPy."""
    from trainlab.initializers import initialize

    images = _images()
    model = _ProjectedConv()
    weight, bias = model.project.weight.detach().double().numpy(), model.project.bias.detach().double().numpy()
    received = (images.double().numpy().reshape(64, 36) @ weight.T + bias).reshape(64, 1, 6, 6)
    initialize(model, [{"name": "patch_whitening", "images": 64, "eps": 1e-9, "layer": "conv"}], images)
    filters = model.conv.weight[:4].detach().double().numpy().reshape(4, 4)
    p = numpy_patches(received, 2)
    np.testing.assert_allclose(filters @ (p.T @ p / len(p)) @ filters.T, np.eye(4), atol=1e-4)
    assert model.training  # the eval-mode forward that read the inputs leaves the mode as it was
    with pytest.raises(ConfigError, match=r"^patch whitening: the model's forward does not call its conv 'unused'"):
        initialize(model, [{"name": "patch_whitening", "images": 64, "layer": "unused"}], images)


class _NormalisedConv(nn.Module):
    """A conv after a BatchNorm, called by keyword inside a forward that catches every Exception."""

    def __init__(self):
        super().__init__()
        self.norm, self.conv = nn.BatchNorm2d(1), nn.Conv2d(1, 8, 2)

    def forward(self, x):
        try:
            return self.conv(input=self.norm(x)).flatten(1)
        except Exception:  # a user's forward that hides its failures
            return x.flatten(1)


def test_a_conv_after_a_batchnorm_whitens_the_batch_normalised_patches_it_trains_on():
    """An eval-mode forward passed the fresh BatchNorm's input through unscaled (running var 1): a conv after
    it was whitened for inputs 5x smaller than the ones it trains on. A forward catching Exception swallowed the
    hook's stop (a false 'never calls'), and a conv called by keyword broke the hook (an IndexError)."""
    from trainlab.initializers import initialize

    images = 5 * _images().double()
    model = _NormalisedConv().double()
    initialize(model, [{"name": "patch_whitening", "images": 64, "eps": 1e-9}], images.float())
    x = images.numpy()  # the training-mode BatchNorm of all 64 images (one chunk): biased variance, eps 1e-5
    received = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    filters = model.conv.weight[:4].detach().numpy().reshape(4, 4)
    p = numpy_patches(received, 2)
    np.testing.assert_allclose(filters @ (p.T @ p / len(p)) @ filters.T, np.eye(4), atol=1e-4)
    assert model.training and float(model.norm.running_var) == 1.0 and int(model.norm.num_batches_tracked) == 0
