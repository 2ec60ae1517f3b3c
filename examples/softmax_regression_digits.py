"""Softmax regression on scikit-learn's 8x8 digits: one Linear layer trained
with the fused softmax cross-entropy by minibatch SGD."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fastmlp import nn

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

model = nn.Sequential(nn.Linear(64, 10, init="glorot", random_state=0))
loss = nn.SoftmaxCrossEntropy()
history = nn.fit(model, X_tr, y_tr, loss=loss, optimizer="sgd", learning_rate=0.1,
                 momentum=0.9, epochs=30, batch_size=32, random_state=0, verbose=0)
acc = loss.score(model.predict(X_te), y_te)
print(f"final training loss {history['loss'][-1]:.4f}")
print(f"test accuracy {acc:.4f}")
