"""Servers that speak Anthropic's Messages API (Anthropic's own, vLLM, llama.cpp's server, SGLang):
`client` sends, `request` writes the body (the client's own, or translated), `stream` reads the reply."""
