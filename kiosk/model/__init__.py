"""The on-device model: a 224×224 uint8 picture in, what may be said about it out.

classifier opens and checks the LiteRT (tflite-runtime fallback) model once and returns
probabilities; decision turns probabilities into a label, abstention and urgency; conditions
names the six conditions, "other" and their urgencies.
"""
