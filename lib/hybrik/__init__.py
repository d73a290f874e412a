"""The frozen HybrIK stage (HybrIK's ``HRNetSMPLCam``) in PyTorch, loadable from HybrIK's released weights.

Modules (one concern each):
    skeleton    HybrIK's 29-joint tree (SMPL joints + 5 leaf vertices), flip permutations, IK order
    hrnet       the HRNet backbone (width a parameter: 48 for the released weights)
    ik          the hybrid analytical twist-and-swing IK (batched, differentiable, SVD-free, exportable)
    model       ``HybrIKCam``: heatmaps, soft-argmax, shape / twist / camera heads, flip test, outputs
    checkpoint  strict loading of ``hybrik_hrnet.pth`` (``smpl.*`` buffers accepted and ignored)
    preprocess  HybrIK's test-time crop + normalisation (the one implementation) and the model's input names
    camera      HybrIK's camera: crop focal length, depth factor, placing meshes, projecting to pixels

Running it on frames, its ONNX export and a user's HybrIK ONNX are deployment (``lib.deploy.hybrik_run``,
``hybrik_export``, ``hybrik_export_cli``, ``hybrik_onnx``): this package never imports ``lib.deploy``.
"""
