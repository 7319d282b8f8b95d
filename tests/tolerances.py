"""Float tolerances of the suite, named once, each with why it is that size.

Float32 results depend on the order of operations: oneDNN picks convolution kernels by instruction set
(AVX-512, AVX2, SSE4.1) and by batch size, so the same computation differs in its last bits between
machines, batch compositions and call paths. The suite runs on three kernel sets (``make test-numerics``);
these bounds hold on all of them with room to spare (measured maxima in the comments).
"""

# dlib's own implementation (dlib-bin, its own kernels) against our PyTorch port, per descriptor
# component (descriptors have components of about ±0.1): measured max 5.4e-7 on 40 real chips.
DLIB_PARITY_ATOL = 1e-4

# The same image through two paths of ours (batch vs single image, fused vs Captum, staged vs batch):
# Q̂ in [0, 1] (the Eq. 2 sigmoid has slopes up to α/4 ≈ 37 for dlib-resnet, so 1e-7 in the embedding
# becomes a few 1e-6 in Q̂): measured max 2e-6.
PATH_QUALITY_ATOL = 1e-5
# Saliency maps, relative to each map's maximum (tiny gradients of cancelling paths have no relative
# precision, so the comparison is scaled by the map): measured max 3e-5.
PATH_SALIENCY_REL = 1e-3
# PLQ maps in [0, 1] (Eq. 6 has slope at most ~0.65 per unit of log10 saliency): measured max 2.4e-5.
PATH_PLQ_ATOL = 1e-4

# CPU against CUDA (other kernels, TF32 off): Q̂, embeddings, saliency relative to its maximum, PLQ.
DEVICE_QUALITY_ATOL = 1e-4
DEVICE_EMBEDDING_ATOL = 1e-5
DEVICE_SALIENCY_REL = 1e-4
DEVICE_PLQ_ATOL = 1e-4


def max_relative(a, b) -> float:
    """max |a − b| / max |b|: the difference of two maps relative to the second one's scale."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))

# Our conversion of a small ONNX graph (int8 block-quantised weights folded to float32, onnx2torch) against ONNX's
# own reference evaluator on the file as written: raw embedding, relative to its largest component (max_relative;
# float32 sums in another order): measured max 5e-7.
ONNX_CONVERSION_REL = 1e-5

# SFace converted by us against OpenCV's FaceRecognizerSF (its own DNN engine, int8 weights dequantised at load)
# on 12 aligned London crops, per component of the unit embedding: measured max 3.0e-7 (default, AVX2, SSE4.1).
SFACE_PARITY_ATOL = 1e-5

# The same image and batch at another number of torch threads (a Dask worker gets the cores split between the
# workers, a serial run all of them; oneDNN splits its reductions by thread): Q̂ and raw Q. Measured max 1.1e-5
# in Q̂ (6.7e-6 in raw Q) of the utility head, 1 against 2 threads, on the 17 images of the ERC test set.
THREADS_QUALITY_ATOL = 1e-4

# Numbers printed with two decimals in `plqa explain`'s feedback text (mean PLQ of the face and of a region): a
# value next to a rounding edge moves one step under changes of the size above. Measured: 0.66 against 0.65 for
# one of 2040 files between a serial and a --workers 2 run.
FEEDBACK_NUMBER_ATOL = 0.01 + 1e-9


def same_text_but_numbers(a: str, b: str, atol: float) -> bool:
    """Whether two texts agree word for word and their decimal numbers within ``atol``."""
    import re

    pa, pb = re.split(r"(\d+\.\d+)", a), re.split(r"(\d+\.\d+)", b)
    return len(pa) == len(pb) and all(x == y if i % 2 == 0 else abs(float(x) - float(y)) <= atol
                                      for i, (x, y) in enumerate(zip(pa, pb)))


# The side-by-side PNG of a map (crop | colour-mapped PLQ): share of pixels that may differ between two runs whose
# PLQ maps agree to PATH_PLQ_ATOL (a map value next to a colormap bin edge may land in the neighbouring bin):
# measured 0 (bit-identical files) between serial and --workers 2 runs on 5 London photos.
RENDERED_MAP_PIXEL_SHARE = 0.01

# The shipped dlib-resnet bundle refitted by `plqa calibrate` against the (α, r, γ) literals the package shipped
# before bundles existed, fitted by the same code on the same photos on another machine and printed to 5 significant
# digits: relative difference, measured max 3.9e-4 (utility's α, 121.927 against 121.88).
SHIPPED_SCALING_REL = 1e-3

# Each detector's five landmarks against MTCNN's on the same photo, in MTCNN's inter-ocular distances: (median, max)
# over photos × landmarks (research/detector_agreement.py, 204 London photos). YuNet places eye centres, nose tip and
# mouth corners a little differently: measured median 0.067, 95th percentile 0.149, max 0.236. yunet-mtcnn's
# landmarks are MTCNN's O-Net's on another box: median 0.017, 95th percentile 0.041, max 0.088.
DETECTOR_LANDMARK_IOD = {"yunet": (0.1, 0.3), "yunet-mtcnn": (0.03, 0.15)}
