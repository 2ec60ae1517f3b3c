"""Neural-network building blocks on top of `fastmlp.ops`: layers and
`Sequential` models over one flat parameter buffer, losses, optimizers,
learning-rate schedules, gradient checking and the `fit` training loop."""
from fastmlp.nn.schedules import (ConstantLR, CosineLR, ExponentialLR, InverseScalingLR,
                                  ReduceLROnPlateau, StepLR)
from fastmlp.nn.layers import (LAYERS, BatchNorm1d, Dropout, Identity, Layer, LayerNorm,
                               LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh)
from fastmlp.nn.losses import (BinaryCrossEntropy, Loss, MAELoss, MSELoss,
                               SoftmaxCrossEntropy, r2_score)
from fastmlp.nn import optim
from fastmlp.nn.optim import (SGD, AdaMax, Adadelta, Adagrad, Adam, AdamW, AMSGrad,
                              Optimizer, RMSprop)
from fastmlp.nn.training import check_gradients, fit

__all__ = [
    "AMSGrad", "AdaMax", "Adadelta", "Adagrad", "Adam", "AdamW", "BatchNorm1d",
    "BinaryCrossEntropy", "ConstantLR", "CosineLR", "Dropout", "ExponentialLR", "Identity",
    "InverseScalingLR", "LAYERS", "Layer", "LayerNorm", "LeakyReLU", "Linear", "Loss",
    "MAELoss", "MSELoss", "Optimizer", "RMSprop", "ReLU", "ReduceLROnPlateau", "SGD",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepLR", "Tanh",
    "check_gradients", "fit", "optim", "r2_score",
]
