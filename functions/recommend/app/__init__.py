"""The recommend service: a FastAPI app served through Mangum on Lambda (or uvicorn locally)."""
