"""The frozen HybrIK stage (HybrIK's ``HRNetSMPLCam``) in PyTorch, loadable from HybrIK's released weights.

Modules (one concern each):
    skeleton    HybrIK's 29-joint tree (SMPL joints + 5 leaf vertices), flip permutations, IK order
    hrnet       the HRNet backbone (width a parameter: 48 for the released weights)
    ik          the hybrid analytical twist-and-swing IK (batched, differentiable, SVD-free, exportable)
    model       ``HybrIKCam``: heatmaps, soft-argmax, shape / twist / camera heads, flip test, outputs
    checkpoint  strict loading of ``hybrik_hrnet.pth`` (``smpl.*`` buffers accepted and ignored)
    export      ONNX export with the seed's I/O and its verification against PyTorch
    export_cli  the ``deployment/deployment_hybrik.py`` command line
    run         frames + boxes -> HybrIK's demo ``res.pk`` arrays (PyTorch or ONNX)
"""
