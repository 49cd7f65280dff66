"""The embedded model (LLM_PROVIDER=local): llama.cpp in-process (`model`) and the waiting line
that tells each reply its place (`waiting_line`)."""
