"""Readers of HybrIK results and 2D keypoint files: every format, and one-line errors for bad files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.body.joint_names import COCO_JOINT_NAMES
from lib.data.keypoints2d import coco_to_h36m
from lib.deploy.inputs import read_boxes, read_hybrik_results, read_keypoints_2d
from lib.errors import DataError

F = 6


def _res(frames: int = F, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    aa = rng.normal(0, 0.4, (frames, 24, 3))
    return {"pred_thetas": Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(frames, 216).astype(np.float32),
            "pred_betas": rng.normal(size=(frames, 10)).astype(np.float32),
            "pred_xyz_17": rng.normal(0, 0.2, (frames, 17, 3)).astype(np.float32),
            "transl": rng.normal(0, 1, (frames, 3)).astype(np.float32) + [0, 0, 5],
            "bbox": np.tile([100.0, 50.0, 356.0, 306.0], (frames, 1)),
            "height": np.full(frames, 480), "width": np.full(frames, 640),
            "img_path": [f"{i}.jpg" for i in range(frames)], "aa": aa}


def _write_pk(path: Path, data: dict) -> Path:
    with path.open("wb") as handle:
        pickle.dump({k: v for k, v in data.items() if k != "aa"}, handle)
    return path


def test_res_pk_is_read_with_hybrik_units(tmp_path: Path) -> None:
    res = _res()
    seq = read_hybrik_results(_write_pk(tmp_path / "res.pk", res))
    np.testing.assert_allclose(seq.rot_mat, res["pred_thetas"].reshape(F, 24, 3, 3), atol=1e-6)
    np.testing.assert_allclose(seq.pose_aa, res["aa"].reshape(F, 72), atol=1e-5)
    np.testing.assert_allclose(seq.xyz_17, res["pred_xyz_17"] * 2.2, rtol=1e-6)  # units of 2.2 m -> m
    np.testing.assert_allclose(seq.image_size, np.tile([640, 480], (F, 1)))
    assert seq.transl.shape == (F, 3) and seq.bbox.shape == (F, 4) and seq.frames == F


def test_npz_and_json_with_axis_angle_or_matrices_read_the_same_pose(tmp_path: Path) -> None:
    res = _res()
    aa = res["aa"]
    np.savez(tmp_path / "aa.npz", pose_aa=aa.reshape(F, 72), betas=res["pred_betas"], fps=25.0)
    np.savez(tmp_path / "mat.npz", rot_mat=res["pred_thetas"].reshape(F, 24, 3, 3), betas=res["pred_betas"])
    (tmp_path / "aa.json").write_text(json.dumps({"pose_aa": aa.tolist(), "betas": res["pred_betas"].tolist(),
                                                  "width": 640, "height": 480}))
    a, m, j = (read_hybrik_results(tmp_path / n) for n in ("aa.npz", "mat.npz", "aa.json"))
    for seq in (a, m, j):
        expected = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(F, 24, 3, 3)
        np.testing.assert_allclose(seq.rot_mat, expected, atol=1e-6)
        assert seq.transl is None and seq.bbox is None
    assert a.fps == 25.0 and m.fps is None
    np.testing.assert_allclose(j.image_size, np.tile([640, 480], (F, 1)))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("pred_thetas"), "no pose key"),
    (lambda d: d.pop("pred_betas"), "no betas"),
    (lambda d: d.update(pred_thetas=np.zeros((F, 96))), "quaternions"),
    (lambda d: d.update(pred_thetas=np.zeros((F, 72))), r"expected \(F, 216\)"),
    (lambda d: d.update(pred_thetas=np.tile(np.eye(3).reshape(9) * 2, (F, 24))), "does not hold rotation matrices"),
    (lambda d: d.update(pred_betas=np.zeros((F - 1, 10))), "has 5 frames but the pose has 6"),
    (lambda d: d.update(pred_betas=np.zeros((F, 300))), r"expected \(F, 10\)"),
    (lambda d: d.update(pred_xyz_17=np.zeros((F, 29, 3))), r"expected \(F, 17, 3\)"),
    (lambda d: d.update(transl=np.zeros((F + 2, 3))), "has 8 frames"),
    (lambda d: d.pop("width"), "only one of 'width' / 'height'"),
])
def test_bad_results_files_fail_with_one_line(tmp_path: Path, change, message: str) -> None:
    res = _res()
    change(res)
    with pytest.raises(DataError, match=message) as err:
        read_hybrik_results(_write_pk(tmp_path / "res.pk", res))
    assert "\n" not in str(err.value) and "res.pk" in str(err.value)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown HybrIK results format"):
        read_hybrik_results(tmp_path / "x.csv")
    with pytest.raises(DataError, match="not found"):
        read_hybrik_results(tmp_path / "nope.pk")


# ------------------------------------------------------------------------------------------ 2D keypoints


def _coco(frames: int = F, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(100, 400, (frames, 17, 3))
    kp[..., 2] = rng.uniform(0.2, 1.0, (frames, 17))
    return kp


def test_coco_keypoints_in_every_layout_give_the_same_h36m_array(tmp_path: Path) -> None:
    kp = _coco()
    expected = coco_to_h36m(kp)
    np.save(tmp_path / "kp.npy", kp)
    np.savez(tmp_path / "kp.npz", keypoints=kp[..., :2], keypoint_scores=kp[..., 2])
    mmpose = {"meta_info": {"dataset_name": "coco"}, "instance_info": [
        {"frame_id": f + 1, "instances": [{"keypoints": kp[f, :, :2].tolist(), "keypoint_scores": kp[f, :, 2].tolist(),
                                           "bbox": [[0, 0, 1, 1]], "bbox_score": 0.9}]} for f in range(F)]}
    (tmp_path / "mmpose.json").write_text(json.dumps(mmpose))
    per_frame = [[{"keypoints": kp[f, :, :2].tolist(), "keypoint_scores": kp[f, :, 2].tolist()}] for f in range(F)]
    (tmp_path / "vitpose.json").write_text(json.dumps(per_frame))
    alphapose = [{"image_id": f"{f}.jpg", "category_id": 1, "keypoints": kp[f].reshape(-1).tolist(), "score": 1.0}
                 for f in range(F)]
    (tmp_path / "alphapose.json").write_text(json.dumps(alphapose))
    (tmp_path / "plain.json").write_text(json.dumps(kp.tolist()))
    for name in ("kp.npy", "kp.npz", "mmpose.json", "vitpose.json", "alphapose.json", "plain.json"):
        np.testing.assert_allclose(read_keypoints_2d(tmp_path / name, "coco", F), expected, atol=1e-9, err_msg=name)


def test_h36m_layout_is_kept_and_missing_scores_are_one(tmp_path: Path) -> None:
    kp = _coco()[..., :2]
    np.save(tmp_path / "h36m.npy", kp)
    out = read_keypoints_2d(tmp_path / "h36m.npy", "h36m", F)
    np.testing.assert_allclose(out[..., :2], kp)
    np.testing.assert_allclose(out[..., 2], 1.0)


def test_the_person_nearest_hybriks_box_is_taken_and_empty_frames_get_zero_confidence(tmp_path: Path) -> None:
    near, far = _coco(2, seed=2), _coco(2, seed=3) + 1000.0
    frames = [[{"keypoints": far[0, :, :2].tolist(), "keypoint_scores": [1.0] * 17},
               {"keypoints": near[0, :, :2].tolist(), "keypoint_scores": [0.3] * 17}], []]
    (tmp_path / "two.json").write_text(json.dumps(frames))
    boxes = np.array([[100.0, 100.0, 400.0, 400.0]] * 2)
    out = read_keypoints_2d(tmp_path / "two.json", "coco", 2, ref_boxes=boxes)
    np.testing.assert_allclose(out[0, :, :2], coco_to_h36m(near[0, :, :2], has_confidence=False))
    assert np.all(out[1, :, 2] == 0)
    # without a box, the most confident person
    out = read_keypoints_2d(tmp_path / "two.json", "coco", 2)
    np.testing.assert_allclose(out[0, :, :2], coco_to_h36m(far[0, :, :2], has_confidence=False))


def test_bad_keypoint_files_fail_with_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "wholebody.npy", np.zeros((F, 133, 3)))
    with pytest.raises(DataError, match="133 joints per frame; expected 17"):
        read_keypoints_2d(tmp_path / "wholebody.npy", "coco", F)
    np.save(tmp_path / "short.npy", np.zeros((F - 2, 17, 3)))
    with pytest.raises(DataError, match="4 frames of 2D keypoints but the HybrIK results have 6"):
        read_keypoints_2d(tmp_path / "short.npy", "coco", F)
    np.save(tmp_path / "flat.npy", np.zeros((F, 51)))
    with pytest.raises(DataError, match=r"expected \(F, 17, 2\)"):
        read_keypoints_2d(tmp_path / "flat.npy", "coco", F)
    np.savez(tmp_path / "nokey.npz", joints=np.zeros((F, 17, 3)))
    with pytest.raises(DataError, match="no key 'keypoints'"):
        read_keypoints_2d(tmp_path / "nokey.npz", "coco", F)
    (tmp_path / "dict.json").write_text(json.dumps({"people": []}))
    with pytest.raises(DataError, match="without 'instance_info' or 'keypoints'"):
        read_keypoints_2d(tmp_path / "dict.json", "coco", F)
    assert len(COCO_JOINT_NAMES) == 17


def test_boxes(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "b.txt", [[1, 2, 30, 40], [2, 3, 31, 41]], delimiter=",")
    np.testing.assert_allclose(read_boxes(tmp_path / "b.txt", 2), [[1, 2, 30, 40], [2, 3, 31, 41]])
    (tmp_path / "b.json").write_text(json.dumps([[1, 2, 30, 40]]))
    with pytest.raises(DataError, match="1 boxes for 2 frames"):
        read_boxes(tmp_path / "b.json", 2)
    (tmp_path / "xywh.json").write_text(json.dumps([[10, 10, 5, 5]]))
    with pytest.raises(DataError, match="not xyxy"):
        read_boxes(tmp_path / "xywh.json", 1)


# --------------------------------------------------------------------------------------- invalid frames


def test_unusable_frames_are_kept_as_invalid_with_a_reason(tmp_path: Path) -> None:
    res = _res()
    res["pred_thetas"][1, 5] = np.nan
    res["pred_thetas"][2] = 0.0  # all-zero matrices: a frame filled in for "no estimate"
    res["pred_betas"][3, 0] = np.inf
    res["bbox"][4, 2] = np.nan
    seq = read_hybrik_results(_write_pk(tmp_path / "res.pk", res))
    assert seq.issues == ("", "non-finite 'pred_thetas'", "all-zero 'pred_thetas'", "non-finite 'betas'",
                          "non-finite 'bbox'", "")
    assert seq.valid.tolist() == [True, False, False, False, False, True]
    np.testing.assert_allclose(seq.rot_mat[0], res["pred_thetas"][0].reshape(24, 3, 3), atol=1e-6)
    assert np.isnan(seq.rot_mat[1]).all() and np.isfinite(seq.rot_mat[[0, 3, 4, 5]]).all()


def test_frame_indices_place_the_entries_and_mark_missing_frames(tmp_path: Path) -> None:
    res = _res()
    res["img_path"] = [f"raw/video-{i:06d}.png" for i in (5, 6, 9, 10, 11, 12)]  # HybrIK skipped 7 and 8
    seq = read_hybrik_results(_write_pk(tmp_path / "res.pk", res))
    assert seq.frames == 8 and seq.valid.tolist() == [True, True, False, False, True, True, True, True]
    assert seq.issues[2] == "missing from 'img_path'"
    np.testing.assert_allclose(seq.betas[[0, 1, 4, 5, 6, 7]], res["pred_betas"], atol=1e-6)
    assert np.isnan(seq.betas[2:4]).all() and np.isnan(seq.transl[2:4]).all()
    # an explicit index key wins; names without increasing numbers are consecutive frames
    aa = res["aa"].reshape(F, 72)
    np.savez(tmp_path / "idx.npz", pose_aa=aa, betas=res["pred_betas"], frame_idx=[0, 1, 2, 4, 5, 6])
    assert read_hybrik_results(tmp_path / "idx.npz").valid.tolist() == [True, True, True, False, True, True, True]
    res["img_path"] = [f"{name}.jpg" for name in "abcdef"]
    assert read_hybrik_results(_write_pk(tmp_path / "plain.pk", res)).frames == F
    np.savez(tmp_path / "back.npz", pose_aa=aa, betas=res["pred_betas"], frame_idx=[0, 1, 3, 2, 4, 5])
    with pytest.raises(DataError, match=r"back.npz: key 'frame_idx' is not increasing \(entry 3: 2 after 3\)"):
        read_hybrik_results(tmp_path / "back.npz")


def test_lost_2d_joints_and_empty_boxes_are_not_errors(tmp_path: Path) -> None:
    kp = _coco()
    kp[2, 5, 0] = np.nan
    np.save(tmp_path / "kp.npy", kp)
    out = read_keypoints_2d(tmp_path / "kp.npy", "h36m", F)
    np.testing.assert_array_equal(out[2, 5], [0.0, 0.0, 0.0])  # the lost joint has confidence 0
    np.testing.assert_array_equal(np.delete(out[2], 5, axis=0), np.delete(kp[2], 5, axis=0))
    (tmp_path / "b.json").write_text(json.dumps([[1, 2, 30, 40], None, [], [0, 0, 0, 0], [5, 5, 5, 9]]))
    boxes = read_boxes(tmp_path / "b.json", 5)
    np.testing.assert_array_equal(boxes[0], [1, 2, 30, 40])
    assert np.isnan(boxes[1:]).all()  # nobody, nobody, zeros, zero width: empty
