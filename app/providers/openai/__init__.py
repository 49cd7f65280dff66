"""OpenAI and OpenAI-compatible upstreams: the client (`client`) and its streamed replies (`stream`),
built on what every HTTP server shares (`providers.httpapi`)."""
