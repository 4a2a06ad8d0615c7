"""Reads back with nibabel the files scarce-io's `write_nifti` wrote, and compares them
with nibabel's reading of the source files: data equal as float32, affine equal to float32
precision, sform and qform codes set.

    SCARCE_KEEP_WRITTEN=/some/dir cargo test -p scarce-io --test nifti_manifest
    python scripts/nibabel_reads_written.py /some/dir DATA_ROOT
"""
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

written, root = Path(sys.argv[1]), Path(sys.argv[2]) / "nifti"
checked = 0
for out in sorted(written.glob("*.nii.gz")):
    # The writer names its output after the source, with `/` as `__` and `.nii.gz` added.
    name = out.name.replace("__", "/")
    source = root / name if (root / name).exists() else root / name.replace(".nii.gz", ".nii")
    a, b = nib.load(str(source)), nib.load(str(out))
    want = np.asarray(a.get_fdata(), dtype=np.float32).reshape(b.shape, order="F") if a.shape != b.shape else a.get_fdata().astype(np.float32)
    got = b.get_fdata().astype(np.float32)
    assert got.shape == want.shape, (out.name, got.shape, want.shape)
    assert np.array_equal(got, want), out.name
    # A CIFTI-2 source has no affine in nibabel (its axes are brain models); ours is the
    # NIfTI-2 header's base affine, so only the data is compared there.
    if getattr(a, "affine", None) is not None:
        assert np.allclose(b.affine, a.affine, rtol=0, atol=1e-4), (out.name, b.affine, a.affine)
    assert int(b.header["sform_code"]) == 1 and int(b.header["qform_code"]) == 1
    checked += 1
    what = "affine within 1e-4" if getattr(a, "affine", None) is not None else "no affine (CIFTI-2 source)"
    print(f"{out.name}: nibabel reads {got.shape} {got.dtype}, data identical, {what}")
print(f"{checked} written files read back by nibabel {nib.__version__}")
assert checked > 0
