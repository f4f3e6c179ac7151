"""The two models: a from-scratch NumPy RNN and a PyTorch nn.RNN char model."""
