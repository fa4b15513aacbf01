"""The Gradio app's pieces: one module per tab; callbacks call the cllm core and return display data."""
