"""The live "Train it yourself" lab: small models a visitor trains on the server in seconds, one step at a time.

- ``toy2d``: diffusion in two dimensions (an MLP ε-predictor, our DDPMScheduler and ε loss) on ``toy2d_targets``;
- ``vae2d``: the project's VAE with a 2-D latent on MNIST;
- ``budget``: what both runs share (a time/step/stop budget, the step loop, one-file safetensors downloads);
- ``figures``: their small matplotlib pictures.

The app's handlers for these runs are ``playground/lab_handlers.py``; the tab is ``playground/tabs/lab.py``.
"""
