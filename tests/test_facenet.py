"""FaceNet backbones: shapes, trunk/head split and alignment with random weights; real weights when cached."""
import os

import numpy as np
import pytest
import torch

from plqa_nb.backbones.facenet import FaceNet, checkpoint_path
from plqa_nb.errors import ModelUnavailableError


@pytest.fixture(scope="module")
def random_facenet():
    torch.manual_seed(0)
    return FaceNet(dataset=None).eval()


def test_shapes_and_split_match_facenet_pytorch(random_facenet):
    x = torch.rand(2, 3, 160, 160) * 255
    with torch.no_grad():
        feats = random_facenet.trunk(x)
        emb = random_facenet(x)
        ref = random_facenet.net((x - 127.5) / 128.0)  # facenet-pytorch's own forward (normalised)
    assert feats.shape == (2, 1792) and emb.shape == (2, 512)
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


def test_stochastic_head_is_seeded(random_facenet):
    with torch.no_grad():
        f = random_facenet.trunk(torch.rand(1, 3, 160, 160) * 255)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        a, b = random_facenet.head(f, 0.5, g1), random_facenet.head(f, 0.5, g2)
        c = random_facenet.head(f, 0.5, g1)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_alignment_is_the_160_px_box_crop(random_facenet):
    from plqa_nb.alignment import align_face
    from plqa_nb.data import astronaut
    from plqa_nb.detection import detect_faces

    photo = astronaut()
    det = detect_faces(photo)
    face = align_face(photo, det, random_facenet.crop_size, random_facenet.template)
    assert face.crop.shape == (160, 160, 3)
    x1, y1, x2, y2 = det.box
    assert np.all((face.landmarks > 0) & (face.landmarks < 160))
    np.testing.assert_allclose(face.landmarks[0, 0], (det.landmarks[0, 0] - x1) * 160 / (x2 - x1))


def test_offline_error_names_file_place_and_fallback(monkeypatch, tmp_path):
    import facenet_pytorch.models.inception_resnet_v1 as irv1

    def no_network(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(irv1, "download_url_to_file", no_network)
    monkeypatch.setattr(irv1, "get_torch_home", lambda: str(tmp_path))
    with pytest.raises(ModelUnavailableError) as info:
        FaceNet("vggface2")
    msg = str(info.value)
    assert "20180402-114759-vggface2.pt" in msg and str(tmp_path / "checkpoints") in msg and "dlib-resnet" in msg


@pytest.mark.skipif(not os.path.isfile(checkpoint_path("vggface2")), reason="vggface2 weights not in the torch cache")
def test_real_vggface2_separates_people(faces_dir):
    from plqa_nb.pipeline import Explainer, crops_to_tensor

    ex = Explainer("facenet-vggface2", quality="serfiq", quality_params={"m": 10})
    crops = [ex.prepare(faces_dir / f"london/{e}/{i}.jpg").aligned.crop for i in ("001", "002") for e in
             ("neutral", "smiling")]
    with torch.no_grad():
        e = ex.backbone(crops_to_tensor(crops))
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[1, 2]
