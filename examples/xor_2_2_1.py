"""XOR with a 2-2-1 network (lecture notes 02: a single perceptron cannot
represent XOR, two hidden units can).

Architecture: 2 inputs -> Linear(2, 2) + tanh -> Linear(2, 1) -> sigmoid,
trained with the binary cross-entropy on the logit (the sigmoid is fused into
the loss) by full-batch Adam. Prints the truth table and the accuracy.
"""
import numpy as np

from fastmlp import nn

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
y = np.array([0, 1, 1, 0], dtype=np.float64)

model = nn.Sequential(
    nn.Linear(2, 2, init="glorot", dtype=np.float64, random_state=2),
    nn.Tanh(dtype=np.float64),
    nn.Linear(2, 1, init="glorot", dtype=np.float64, random_state=3),
)
loss = nn.BinaryCrossEntropy()
history = nn.fit(model, X, y[:, None], loss=loss, optimizer="adam", learning_rate=0.05,
                 epochs=1500, batch_size=4, shuffle=False, verbose=0)

logits = model.predict(X)[:, 0]
prob = 1.0 / (1.0 + np.exp(-logits))
pred = (prob > 0.5).astype(int)
print("x1 x2  target  p(1)    predicted")
for (a, b), t, p, q in zip(X.astype(int), y.astype(int), prob, pred):
    print(f"{a}  {b}   {t}       {p:.4f}  {q}")
acc = float(np.mean(pred == y))
print(f"final loss {history['loss'][-1]:.5f}")
print(f"accuracy {acc:.2f}")
