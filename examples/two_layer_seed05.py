"""The two-layer network of lecture notes 05 (hw0 Q5):

    h(X) = softmax(ReLU(X W1) W2),   W1 (n, d), W2 (d, k), no biases,

trained by SGD with one pass over the data per epoch in minibatches, with the
hand-derived gradients of the notes (batch B, Iy the one-hot labels):

    Z1 = ReLU(X W1),  G2 = softmax(Z1 W2) - Iy,  G1 = 1[Z1 > 0] * (G2 W2^T)
    grad W1 = X^T G1 / B,  grad W2 = Z1^T G2 / B

The same network as a fastmlp.nn.Sequential (Linear(bias=False) + ReLU fused
into one GEMM, the softmax fused into the loss) is trained side by side from
the same initial weights; the script checks the hand-derived gradients against
the model's backward and against central finite differences
(fastmlp.nn.check_gradients), then that both trainings give the same weights.
"""
import numpy as np
from sklearn.datasets import load_digits

from fastmlp import nn

X, y = load_digits(return_X_y=True)
X = X / 16.0
X, y = X[:1500], y[:1500]
m, n = X.shape
k, d = 10, 32
lr, batch, epochs = 0.2, 100, 10

# hw0's initialisation: randn / sqrt(hidden dim) and randn / sqrt(classes)
rs = np.random.RandomState(5)
W1 = rs.randn(n, d) / np.sqrt(d)
W2 = rs.randn(d, k) / np.sqrt(k)


def softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def hand_gradients(Xb, yb, W1, W2):
    Z1 = np.maximum(Xb @ W1, 0)
    G2 = softmax(Z1 @ W2) - np.eye(k)[yb]
    G1 = (Z1 > 0) * (G2 @ W2.T)
    return Xb.T @ G1 / len(yb), Z1.T @ G2 / len(yb)


model = nn.Sequential(nn.Linear(n, d, bias=False, dtype=np.float64),
                      nn.ReLU(dtype=np.float64),
                      nn.Linear(d, k, bias=False, dtype=np.float64))
model.layers[0].W[...] = W1
model.layers[2].W[...] = W2
loss = nn.SoftmaxCrossEntropy()

# 1. the hand-derived gradients = the model's backward = finite differences
Xb, yb = X[:20], y[:20]
g1, g2 = hand_gradients(Xb, yb, W1, W2)
model.backward(loss(model.forward(Xb), yb)[1])
diff = max(np.abs(g1 - model.layers[0].dW).max(), np.abs(g2 - model.layers[2].dW).max())
print(f"hand-derived vs backward: max abs difference {diff:.2e}")
fd = nn.check_gradients(model, loss, Xb, yb, return_details=True)
hand = np.concatenate([g1.ravel(), g2.ravel()])
fd_err = np.max(np.abs(hand - fd["numeric"]) /
                np.maximum(np.maximum(np.abs(hand), np.abs(fd["numeric"])), 1e-5))
print(f"hand-derived vs finite differences: max relative error {fd_err:.2e}")
print(f"check_gradients (parameters and input): {max(fd['parameters'], fd['input']):.2e}")
assert diff < 1e-12 and fd_err < 1e-4

# 2. train both for `epochs` passes (no shuffling, as in hw0's nn_epoch)
H1, H2 = W1.copy(), W2.copy()
for epoch in range(epochs):
    for i in range(0, m, batch):
        g1, g2 = hand_gradients(X[i:i + batch], y[i:i + batch], H1, H2)
        H1 -= lr * g1
        H2 -= lr * g2
history = nn.fit(model, X, y, loss=loss, optimizer=nn.SGD(model.parameters(), lr),
                 epochs=epochs, batch_size=batch, shuffle=False, verbose=0)
for epoch, value in enumerate(history["loss"], 1):
    print(f"epoch {epoch:2d}  loss {value:.4f}")
wdiff = max(np.abs(H1 - model.layers[0].W).max(), np.abs(H2 - model.layers[2].W).max())
err_hand = np.mean(np.argmax(np.maximum(X @ H1, 0) @ H2, axis=1) != y)
err_model = np.mean(loss.predict(model.predict(X)) != y)
print(f"weights after training: max abs difference {wdiff:.2e}")
print(f"training error: hand {err_hand:.4f}, fastmlp {err_model:.4f}")
assert wdiff < 1e-10
