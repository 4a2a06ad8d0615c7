"""Times pydicom and nibabel on the files `benches/io.rs` times: parse + decode + modality
LUT from bytes in memory (pydicom), and load + get_fdata of the MNI template (nibabel).

    python benches/pydicom_nibabel.py [DATA_ROOT]

Needs pydicom, numpy, nibabel and, for JPEG 2000, pylibjpeg + pylibjpeg-openjpeg. Prints
the median of repeated runs per case, in milliseconds, one JSON object per line.
"""
import io
import json
import statistics
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data")


def median_ms(fn, min_time=2.0, min_runs=10):
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, len(times)


cases = [
    ("ct_512_native", "dicom/pydicom_data/693_UNCR.dcm"),
    ("ct_512_jpeg2000", "dicom/pydicom_data/693_J2KR.dcm"),
    ("multiframe_native_10x64x64", "dicom/pydicom_data/emri_small.dcm"),
    ("multiframe_rle_2x600x800", "dicom/pydicom_data/OBXXXX1A_rle_2frame.dcm"),
]
for name, rel in cases:
    data = (root / rel).read_bytes()

    def decode():
        ds = pydicom.dcmread(io.BytesIO(data))
        return apply_modality_lut(ds.pixel_array, ds)

    ms, n = median_ms(decode)
    print(json.dumps({"case": name, "tool": f"pydicom {pydicom.__version__}", "median_ms": round(ms, 3), "runs": n}))

mni = root / "nifti/nilearn/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


for suffix, dtype in [("f64", np.float64), ("f32", np.float32)]:

    def load():
        return nib.load(str(mni)).get_fdata(dtype=dtype)

    ms, n = median_ms(load, min_time=5.0)
    print(json.dumps({"case": f"mni_197x233x189_nii_gz_{suffix}", "tool": f"nibabel {nib.__version__}", "median_ms": round(ms, 3), "runs": n}))
