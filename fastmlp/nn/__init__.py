"""Neural-network building blocks: learning-rate schedules (layers come later)."""
from fastmlp.nn.schedules import (ConstantLR, CosineLR, ExponentialLR, InverseScalingLR,
                                  ReduceLROnPlateau, StepLR)

__all__ = [
    "ConstantLR",
    "CosineLR",
    "ExponentialLR",
    "InverseScalingLR",
    "ReduceLROnPlateau",
    "StepLR",
]
