"""Temporal refinement of HybrIK SMPL predictions (EHGFormer / MotionBERT mesh refiner, rebuilt)."""
