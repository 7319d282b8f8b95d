"""Attribution methods on the quality regression model: Captum equivalences, batch independence, the registry."""
import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop, Saliency
from torch import nn

from plqa_nb.attribution import available_methods, get_method, seeded_global_rng
from plqa_nb.attribution.grad_cam import last_conv_block
from plqa_nb.attribution.guided_backprop import GuidedBackpropMethod
from plqa_nb.attribution.integrated_gradients import IntegratedGradientsMethod
from plqa_nb.attribution.smoothgrad import NoiseTunnelMethod
from plqa_nb.pipeline import Explainer, crops_to_tensor
from plqa_nb.plq import merge_channels
from tolerances import PATH_SALIENCY_REL, max_relative

pytestmark = pytest.mark.numerics  # verdicts on float values: also run on SSE4.1 kernels (.ci/run)


@pytest.fixture(scope="module")
def explainer():
    return Explainer("dlib-resnet")


@pytest.fixture(scope="module")
def batch4(explainer, london_crops):
    """4 different real faces [4, 3, 150, 150] and their own Eq. 3 weights [4]."""
    crops = crops_to_tensor(london_crops[:4])
    q_hat, _ = explainer.quality(crops)
    return crops, explainer.weights(crops, q_hat)


def test_captum_saliency_equals_the_fused_plq_saliency(explainer, batch4):
    crops, _ = batch4
    out = explainer.explain_tensor(crops[:2])
    weights = explainer.weights(crops[:2], out["quality"])
    captum = Saliency(explainer.model).attribute(crops[:2].clone().requires_grad_(True), abs=True,
                                                  additional_forward_args=(weights,))
    assert out["attribution"].abs().max() > 1e-5  # a real map, not zeros
    # the fused path returns |∂M_Q/∂I|, as Saliency(abs=True) does
    assert max_relative(captum, out["attribution"]) < PATH_SALIENCY_REL
    assert max_relative(merge_channels(captum), out["saliency"]) < PATH_SALIENCY_REL


def test_noise_tunnel_batch_gives_each_face_its_single_image_map(explainer, batch4):
    """Captum draws the noise of the whole expanded batch [B·n, ...] in one torch.normal call, in
    repeat_interleave order; CPU normals come as one sequential stream (in blocks of 16 values, hence
    n = 4 here: n·3·150·150 is then a multiple of 16), so face i alone reproduces its noise after the
    same seed and i·n·C·H·W dummy normals of the same stdev."""
    crops, weights = batch4
    method = NoiseTunnelMethod("sg-test", "smoothgrad", view="plq", n_samples=4)
    with seeded_global_rng(7):
        batch = method.compute(explainer.model, crops, weights)
    sigma = torch.full((1, *crops.shape[1:]), method.stdev * 255.0)
    for i in range(len(crops)):
        with seeded_global_rng(7):
            torch.normal(0.0, sigma.expand(i * method.n_samples, -1, -1, -1).contiguous())
            single = method.compute(explainer.model, crops[i:i + 1], weights[i:i + 1])
        torch.testing.assert_close(single, batch[i:i + 1], rtol=1e-4, atol=1e-9)
    # each face's own weight is used: doubling face 0's weight doubles its map (M_Q is linear in w) and
    # leaves the other faces' maps as they were
    doubled = weights.clone()
    doubled[0] *= 2
    with seeded_global_rng(7):
        again = method.compute(explainer.model, crops, doubled)
    torch.testing.assert_close(again[0], 2 * batch[0], rtol=1e-4, atol=1e-12)
    torch.testing.assert_close(again[1:], batch[1:], rtol=1e-4, atol=1e-12)


def test_integrated_gradients_batch_gives_each_face_its_single_image_map(explainer, batch4):
    crops, weights = batch4
    method = IntegratedGradientsMethod("ig-test", baseline="blur", n_steps=6, internal_batch_size=8)
    batch = method.attribute(explainer.model, crops, weights, seed=0)
    for i in range(len(crops)):
        single = method.attribute(explainer.model, crops[i:i + 1], weights[i:i + 1], seed=0)
        torch.testing.assert_close(single, batch[i:i + 1], rtol=1e-4, atol=1e-8)


def test_seeded_methods_repeat_and_leave_the_global_rng_alone(explainer, batch4):
    crops, weights = batch4
    cheap = get_method("gradient-shap", n_samples=2)
    torch.manual_seed(123)
    np.random.seed(123)
    a = cheap.attribute(explainer.model, crops[:2], weights[:2], seed=3)
    after_torch, after_np = torch.rand(1), np.random.rand()
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(torch.rand(1), after_torch) and np.random.rand() == after_np
    torch.testing.assert_close(cheap.attribute(explainer.model, crops[:2], weights[:2], seed=3), a)
    assert not torch.allclose(cheap.attribute(explainer.model, crops[:2], weights[:2], seed=4), a)


def _cheap(explainer, name):
    """The registered method with fewer samples/steps/windows: same code path, a fraction of the cost; the
    methods that compare with compliant faces get the Explainer's norm."""
    m = get_method(name)
    params = {k: v for k, v in (("n_samples", 2), ("n_steps", 3), ("window", 40.0), ("stride", 40.0)) if hasattr(m, k)}
    return explainer.attribution_method(name, **params)


def test_every_registered_method_on_two_real_faces(explainer, batch4):
    crops, weights = batch4[0][:2], batch4[1][:2]
    names = available_methods()
    assert {"saliency", "smoothgrad", "smoothgrad-sq", "vargrad", "integrated-gradients",
            "integrated-gradients-blur", "integrated-gradients-mean", "gradient-shap", "input-x-gradient",
            "guided-backprop", "occlusion", "grad-cam"} <= set(names)
    maps = {}
    for name in names:
        method = get_method(name)
        assert method.name == name and method.view in ("plq", "rank")
        attr = _cheap(explainer, name).attribute(explainer.model, crops, weights, seed=0)
        assert attr.shape == crops.shape, name
        assert attr.device == crops.device and attr.dtype == torch.float32, name
        assert torch.isfinite(attr).all(), name
        assert attr.abs().flatten(1).amax(1).min() > 0, f"{name}: an all-zero map"
        maps[name] = merge_channels(attr)
    # methods do differ: guided backprop is not the plain gradient on this F.relu network
    assert not torch.allclose(maps["guided-backprop"], maps["saliency"], rtol=0.1)


def test_grad_cam_uses_the_last_residual_block(explainer):
    assert last_conv_block(explainer.backbone, 150) is explainer.backbone.blocks[-1]


def test_guided_backprop_equals_captum_on_a_network_with_relu_modules():
    """Captum's GuidedBackprop hooks nn.ReLU modules; ours intercepts relu calls. Where both apply they agree
    (a small random-weight network: this is plumbing, not a claim about faces)."""
    class Scalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(4 * 12 * 12, 1))

        def forward(self, x, w):
            return self.net(x)[:, 0] * w

    torch.manual_seed(0)
    model = Scalar()
    x, w = torch.randn(2, 3, 16, 16), torch.tensor([1.0, 2.0])
    ours = GuidedBackpropMethod().attribute(model, x, w)
    theirs = GuidedBackprop(model).attribute(x.clone().requires_grad_(True), additional_forward_args=(w,))
    torch.testing.assert_close(ours, theirs)
    plain = Saliency(model).attribute(x.clone().requires_grad_(True), abs=False, additional_forward_args=(w,))
    assert not torch.allclose(ours, plain)
