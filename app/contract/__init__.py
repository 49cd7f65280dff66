"""The API's shapes in code: request and reply schemas (marshmallow) for the native API
(`native`) and the OpenAI-compatible one (`openai`, `openai_replies`), their shared fields
(`fields`), and the OpenAI shape of ChatWait's errors (`openai_errors`). They mirror
contracts/openapi.yaml; a test keeps them in step."""
