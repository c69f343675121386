"""Sample quality: metric functions, the shipped MNIST evaluator, and scoring of runs."""
