"""A multilayer perceptron on scikit-learn's 8x8 digits: 64-128-64-10 with
ReLU (fused into the GEMMs), trained by Adam with early stopping on a
validation split and a cosine learning-rate schedule; reports test accuracy."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastmlp
from fastmlp import nn

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

model = nn.Sequential(
    nn.Linear(64, 128, random_state=0), nn.ReLU(),
    nn.Linear(128, 64, random_state=1), nn.ReLU(),
    nn.Linear(64, 10, init="glorot", random_state=2),
)
loss = nn.SoftmaxCrossEntropy()
history = nn.fit(model, X_tr, y_tr, loss=loss, optimizer="adam", learning_rate=3e-3,
                 epochs=60, batch_size=32, validation_fraction=0.1, early_stopping=True,
                 patience=10, lr_schedule=nn.CosineLR(3e-3, t_max=60), random_state=0,
                 verbose=0)
acc = loss.score(model.predict(X_te), y_te)
print(f"epochs run {len(history['loss'])}, best validation accuracy "
      f"{max(history['val_score']):.4f}")
print(f"test accuracy {acc:.4f}")
fastmlp.save(model, "digits_mlp.npz")
same = np.array_equal(fastmlp.load("digits_mlp.npz").predict(X_te), model.predict(X_te))
print(f"saved to digits_mlp.npz; reloaded predictions identical: {same}")
