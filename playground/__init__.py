"""Helpers of the Gradio playground (app.py): model loading, input checks, pictures and plots."""
