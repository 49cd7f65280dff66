"""OpenAI and OpenAI-compatible upstreams: the client (`client`), its streamed replies (`stream`),
what their failures mean (`errors`) and the prompt's token count (`tokens`)."""
