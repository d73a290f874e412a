"""Deployment: ONNX export of the refiner and its verification, and refining new videos end to end.

Modules (one concern each):
    hybrik_onnx  running a user-supplied HybrIK ONNX with the seed's I/O, frames + boxes -> res.pk-like dict
    hybrik_run   frames + boxes -> HybrIK's demo res.pk arrays (our PyTorch port or an ONNX)
    hybrik_export, hybrik_export_cli   HybrIK's ONNX export and deployment/deployment_hybrik.py
    inputs       readers: HybrIK res.pk / npz / json results, 2D keypoint files (H36M-17 or COCO-17)
    video        video files in (PyAV): frame count, size and rate from the container, frames one at a time
    animation    animation files out: an SMPL motion in the export frame (metres, Y up), one shape per character
    animation_gltf, animation_bvh   the glTF 2.0 binary (skinned mesh, pose blend shapes) and BVH writers
    onnx_runner  an onnxruntime session of the exported refiner, its metadata, I/O checks
    export       export to ONNX and verification against PyTorch
    render       a small headless CPU mesh renderer (numpy + PIL) for side-by-side overlays
    compare      ground truth | HybrIK | refined meshes of a test sequence (the demo's report figure)
    pipeline     infer_mesh's steps: read inputs, refine, place in the camera frame, write the npz, export
    model_io     rebuilding the refiner from a checkpoint (seed flags, or the configs stored in it)
    export_cli   the command line of deployment/deployment_mesh.py
    infer_cli    the command line of deployment/infer_mesh.py
"""
